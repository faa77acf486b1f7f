// EchoStream web page: microphone or file -> 16 kHz s16le over /ws; text and speech back.
"use strict";
const $ = (id) => document.getElementById(id);
const RATE = 16000;
let ws = null, ctx = null, stream = null, node = null, playAt = 0, audioMs = 0, down = null, sentences = 0;
// The record button in the language the speaker is about to speak (the source of the chosen pair).
const RECORD = { Spanish: ["● Grabar", "■ Parar"], Korean: ["● 녹음 시작", "■ 녹음 중지"], German: ["● Aufnehmen", "■ Stopp"],
                 French: ["● Enregistrer", "■ Arrêter"], English: ["● Record", "■ Stop"] };
let recordLabels = RECORD.English;

function status(s) { $("status").textContent = s; }

// Downsampler: box-filter average over each output period (anti-aliasing) with a fractional phase.
function makeDownsampler(inRate) {
  const step = inRate / RATE;
  let acc = 0, n = 0, pos = 0;
  return (x) => {
    const out = [];
    for (let i = 0; i < x.length; i++) {
      acc += x[i]; n++; pos += 1;
      if (pos >= step) { out.push(acc / n); acc = 0; n = 0; pos -= step; }
    }
    return Float32Array.from(out);
  };
}

function toS16(x) {
  const b = new Int16Array(x.length);
  for (let i = 0; i < x.length; i++) b[i] = Math.max(-32768, Math.min(32767, Math.round(x[i] * 32768)));
  return b.buffer;
}

function playPcm(buf) {
  const s = new Int16Array(buf);
  audioMs += 1000 * s.length / RATE;
  $("audio-ms").textContent = Math.round(audioMs);
  if (!ctx) return;
  const ab = ctx.createBuffer(1, s.length, RATE);
  const ch = ab.getChannelData(0);
  for (let i = 0; i < s.length; i++) ch[i] = s[i] / 32768;
  const src = ctx.createBufferSource();
  src.buffer = ab; src.connect(ctx.destination);
  playAt = Math.max(playAt, ctx.currentTime);
  src.start(playAt); playAt += ab.duration;
}

function open(onReady) {
  $("transcript").textContent = ""; $("translation").textContent = "";
  audioMs = 0; $("audio-ms").textContent = "0"; $("latency").textContent = "–";
  sentences = 0; $("sentences").textContent = "0";
  const token = new URLSearchParams(location.search).get("token");  // a server started with --token
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" +
                     (token ? "?token=" + encodeURIComponent(token) : ""));
  ws.binaryType = "arraybuffer";
  const start = { type: "start", sample_rate: RATE, format: "s16le", channels: 1, segment_ms: parseInt($("segment").value, 10) };
  if ($("pair").value) start.pair = $("pair").value;
  ws.onopen = () => ws.send(JSON.stringify(start));
  ws.onmessage = (m) => {
    if (typeof m.data !== "string") { playPcm(m.data); return; }
    const ev = JSON.parse(m.data);
    if (ev.type === "ready") { status("streaming"); onReady(); }
    else if (ev.type === "asr") $("transcript").textContent = ev.display;
    else if (ev.type === "translation") $("translation").textContent = ev.display;
    else if (ev.type === "sentence") $("sentences").textContent = ++sentences;
    else if (ev.type === "latency") $("latency").textContent = `${Math.round(ev.source_ms)} ms heard, ${Math.round(ev.compute_ms)} ms compute`;
    else if (ev.type === "done") {
      const l = ev.latency;
      $("latency").textContent = l.AL === null ? "none (no translation)"  // null: nothing was translated
        : `AL ${Math.round(l.AL)} ms (computation-aware ${Math.round(l.AL_CA)} ms)`;
      $("transcript").textContent = ev.display.transcript; $("translation").textContent = ev.display.translation;
      status("done");
    } else if (ev.type === "error") status(`error ${ev.code}: ${ev.message}`);
  };
  ws.onclose = () => { if ($("status").textContent === "streaming") status("closed"); };
  ws.onerror = () => status("connection error");
}

async function startRecording() {
  ctx = ctx || new AudioContext();
  await ctx.resume();
  stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false } });
  await ctx.audioWorklet.addModule("/static/recorder-worklet.js");
  down = makeDownsampler(ctx.sampleRate);
  open(() => {
    const src = ctx.createMediaStreamSource(stream);
    node = new AudioWorkletNode(ctx, "recorder");
    node.port.onmessage = (e) => { if (ws && ws.readyState === 1) { const y = down(e.data); if (y.length) ws.send(toS16(y)); } };
    src.connect(node);
  });
  $("record").textContent = recordLabels[1]; $("record").classList.add("recording");
  $("pair").disabled = true;
}

function stopRecording() {
  if (node) { node.disconnect(); node = null; }
  if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
  if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "end" }));
  $("record").textContent = recordLabels[0]; $("record").classList.remove("recording");
  $("pair").disabled = false;
  status("finishing");
}

$("record").onclick = () => (stream ? stopRecording() : startRecording().catch((e) => status(`microphone: ${e.message}`)));

$("file").onchange = async (e) => {
  const f = e.target.files[0];
  if (!f) return;
  ctx = ctx || new AudioContext();
  await ctx.resume();
  const audio = await ctx.decodeAudioData(await f.arrayBuffer());
  const x = makeDownsampler(audio.sampleRate)(audio.getChannelData(0));
  open(() => {
    for (let i = 0; i < x.length; i += RATE / 10) ws.send(toS16(x.subarray(i, i + RATE / 10)));
    ws.send(JSON.stringify({ type: "end" }));
    status("finishing");
  });
};

// A newcomer's start: which language the model understands, and the shipped examples, each
// streamed to the server at the pace of speech as if spoken into the microphone.
async function playExample(ex) {
  ctx = ctx || new AudioContext();
  await ctx.resume();
  const audio = await ctx.decodeAudioData(await (await fetch(ex.audio)).arrayBuffer());
  const x = makeDownsampler(audio.sampleRate)(audio.getChannelData(0));
  const step = RATE / 10;  // 100 ms per frame, one frame every 100 ms
  open(() => {
    let i = 0;
    const tick = setInterval(() => {
      if (!ws || ws.readyState !== 1) { clearInterval(tick); return; }
      if (i < x.length) { ws.send(toS16(x.subarray(i, i + step))); i += step; return; }
      clearInterval(tick);
      ws.send(JSON.stringify({ type: "end" }));
      status("finishing");
    }, 100);
  });
}

// The language pairs the server serves; choosing one switches the examples and the labels.
function showPair(pair) {
  return fetch("/examples?pair=" + encodeURIComponent(pair)).then((r) => r.json()).then(showExamples);
}

fetch("/config").then((r) => r.json()).then((cfg) => {
  const names = Object.keys(cfg.pairs || {});
  for (const name of names) {
    const o = document.createElement("option");
    const p = cfg.pairs[name];
    o.value = name;
    o.textContent = p.source_language && p.target_language ? `${p.source_language} → ${p.target_language}` : name;
    $("pair").append(o);
  }
  $("pair").value = cfg.default_pair || names[0] || "";
  $("pair").onchange = () => { if (!stream) showPair($("pair").value); };
  return showPair($("pair").value);
}).catch(() => {});

function showExamples(info) {
  recordLabels = RECORD[info.source_language] || RECORD.English;
  if (!stream) $("record").textContent = recordLabels[0];
  $("examples").textContent = "";
  $("examples-box").hidden = true;
  if (info.source_language) {
    $("sub").textContent = `This model understands ${info.source_language} and answers in ${info.target_language}, ` +
      "text and speech, as you speak. It was trained on synthetic voices only: the examples below show what it knows.";
  }
  if (!info.examples.length) return;
  $("examples-note").textContent = `${info.source_language || "Source"} sentences from the model's test set:`;
  for (const ex of info.examples) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button"; b.className = "play-example"; b.textContent = "▶ play"; b.onclick = () => playExample(ex);
    li.append(b, ` ${ex.text} `);
    const t = document.createElement("span"); t.className = "ref"; t.textContent = `(${ex.translation})`;
    li.append(t);
    $("examples").append(li);
  }
  $("examples-box").hidden = false;
}
