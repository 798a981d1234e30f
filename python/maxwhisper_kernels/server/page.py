"""GET /: one self-contained page (no build step, nothing fetched from elsewhere) that uploads
a file to the streaming endpoint, shows the text as it arrives, and downloads srt or vtt."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>maxwhisper</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
  #drop { border: 2px dashed #888; border-radius: 8px; padding: 1.5rem; text-align: center; }
  #drop.over { background: #eef; }
  #transcript { white-space: pre-wrap; min-height: 4rem; border: 1px solid #ccc; padding: .75rem; }
  .row { margin: .75rem 0; display: flex; gap: .75rem; flex-wrap: wrap; align-items: center; }
  #status { color: #555; }
</style>
</head>
<body>
<h1>maxwhisper</h1>
<div id="drop">Drop an audio file here, or <input type="file" id="file" accept="audio/*,video/*"></div>
<div class="row">
  <label>Language <input id="language" size="4" placeholder="auto"></label>
  <label>Task <select id="task"><option value="transcriptions">transcribe</option>
    <option value="translations">translate to English</option></select></label>
  <label>API key <input id="key" type="password" size="10"></label>
  <button id="start">Transcribe</button>
</div>
<div class="row">
  <button id="srt" disabled>Download .srt</button>
  <button id="vtt" disabled>Download .vtt</button>
  <span id="status"></span>
</div>
<div id="transcript"></div>
<script>
const $ = (id) => document.getElementById(id);
let chosen = null;

$("file").addEventListener("change", () => { chosen = $("file").files[0] || null; });
$("drop").addEventListener("dragover", (e) => { e.preventDefault(); $("drop").classList.add("over"); });
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (e) => {
  e.preventDefault(); $("drop").classList.remove("over");
  chosen = e.dataTransfer.files[0] || null;
  $("status").textContent = chosen ? chosen.name : "";
});

function form(format, stream) {
  const data = new FormData();
  data.append("file", chosen);
  data.append("model", "whisper-1");
  data.append("response_format", format);
  if ($("language").value) data.append("language", $("language").value);
  if (stream) data.append("stream", "true");
  return data;
}

function post(data) {
  const headers = $("key").value ? { Authorization: "Bearer " + $("key").value } : {};
  return fetch("/v1/audio/" + $("task").value, { method: "POST", body: data, headers });
}

async function failure(response) {
  try { return (await response.json()).error.message; } catch (e) { return response.statusText; }
}

$("start").addEventListener("click", async () => {
  if (!chosen) { $("status").textContent = "choose a file first"; return; }
  $("transcript").textContent = "";
  $("status").textContent = "transcribing...";
  const response = await post(form("json", true));
  if (!response.ok) { $("status").textContent = "error: " + await failure(response); return; }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    let end;
    while ((end = pending.indexOf("\\n\\n")) >= 0) {
      const data = pending.slice(0, end).split("\\n").find((line) => line.startsWith("data:"));
      pending = pending.slice(end + 2);
      if (!data) continue;
      const event = JSON.parse(data.slice(5));
      if (event.error) $("status").textContent = "error: " + event.error.message;
      if (event.type === "transcript.text.delta") $("transcript").textContent += event.delta;
      if (event.type === "transcript.text.done") {
        $("transcript").textContent = event.text;
        $("status").textContent = "done";
        $("srt").disabled = $("vtt").disabled = false;
      }
    }
  }
});

async function download(format) {
  $("status").textContent = "preparing ." + format + "...";
  const response = await post(form(format, false));
  if (!response.ok) { $("status").textContent = "error: " + await failure(response); return; }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = chosen.name.replace(/\\.[^.]*$/, "") + "." + format;
  link.click();
  $("status").textContent = "done";
}
$("srt").addEventListener("click", () => download("srt"));
$("vtt").addEventListener("click", () => download("vtt"));
</script>
</body>
</html>
"""
