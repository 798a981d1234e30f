# maxwhisper kernel package: custom MAX Graph ops for Whisper.
# Each op lives in its own file (log_mel.mojo, layernorm.mojo, attention.mojo)
# and registers itself with @extensibility.register; build with
# `python -m maxwhisper_kernels.build` (see BUILD.md).
