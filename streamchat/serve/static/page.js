"use strict";
// Model text reaches the page as textContent, or as markdown-it's output sanitized by DOMPurify.
const token = new URLSearchParams(location.search).get("token");
const $ = (id) => document.getElementById(id);
const history = [];
let controller = null;

// Markdown through the bundled markdown-it with raw HTML off (tags in the answer stay text), then
// DOMPurify over its output as a second line of defence; images are not rendered (a remote image
// would be a request the answer makes on its own), links open in a new tab without an opener.
const md = window.markdownit({ html: false, linkify: true, typographer: false }).disable("image");
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") { node.setAttribute("target", "_blank"); node.setAttribute("rel", "noopener noreferrer"); }
});
const PURIFY = { RETURN_DOM_FRAGMENT: true, FORBID_TAGS: ["img", "style", "form", "input", "button"], FORBID_ATTR: ["style"] };

function renderMarkdown(target, source) {
  target.replaceChildren(DOMPurify.sanitize(md.render(source), PURIFY));
}

function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text || "";
  $("log").appendChild(div);
  return div;
}

// A Server-Sent Events parser over a byte stream: bytes are decoded with a streaming
// TextDecoder (a character split across reads waits for its other bytes), lines may
// be split across reads, and an event ends at a blank line.
function sseParser(onEvent) {
  const decoder = new TextDecoder("utf-8");
  let buffer = "", name = "message", data = [];
  function line(text) {
    if (text === "") {
      if (data.length) onEvent(name, data.join("\n"));
      name = "message"; data = [];
      return;
    }
    if (text.startsWith(":")) return;  // comment / heartbeat
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  function drain() {
    let i;
    while ((i = buffer.search(/\r\n|\r|\n/)) >= 0) {
      if (buffer[i] === "\r" && i === buffer.length - 1) break;  // maybe a \r\n split across reads
      const size = buffer[i] === "\r" && buffer[i + 1] === "\n" ? 2 : 1;
      line(buffer.slice(0, i));
      buffer = buffer.slice(i + size);
    }
  }
  return {
    push(bytes) { buffer += decoder.decode(bytes, { stream: true }); drain(); },
    end() { buffer += decoder.decode(); drain(); if (buffer) { line(buffer); buffer = ""; } line(""); },
  };
}

async function send(prompt) {
  history.push({ role: "user", content: prompt });
  bubble("user", prompt);
  const reasoning = bubble("reasoning", "");
  const answer = bubble("assistant", "");
  let text = "", first = 0, tokens = 0, scheduled = false, suffix = null;
  // A frame already scheduled may run after the stream ends: every paint re-adds the suffix.
  const paint = () => { scheduled = false; renderMarkdown(answer, text); if (suffix) answer.appendChild(suffix); };
  const schedule = () => { if (!scheduled) { scheduled = true; requestAnimationFrame(paint); } };
  const started = performance.now();
  controller = new AbortController();
  $("stop").disabled = false; $("send").disabled = true;
  $("status").textContent = "waiting…";
  const headers = { "Content-Type": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  const body = { messages: history };
  if ($("model").value.trim()) body.model = $("model").value.trim();
  let ended = false;
  function show(final) {
    const now = performance.now();
    const ttft = first ? (first - started).toFixed(0) + " ms" : "–";
    const rate = first && now > first ? (tokens / ((now - first) / 1000)).toFixed(1) + " tok/s" : "–";
    $("status").textContent = `TTFT ${ttft} · ${tokens} tokens · ${rate}` + (final ? " · " + final : "");
  }
  const parser = sseParser((name, data) => {
    let payload;
    try { payload = JSON.parse(data); } catch { return; }
    if (name === "token") {
      if (!first) first = performance.now();
      tokens += 1; text += payload.text; schedule(); show();
    } else if (name === "reasoning") {
      reasoning.textContent += payload.text;
    } else if (name === "usage") {
      if (payload.output_tokens) tokens = payload.output_tokens;
    } else if (name === "error") {
      ended = true; bubble("error", "error: " + payload.message); show("error");
    } else if (name === "done") {
      ended = true; show(payload.finish_reason || "done");
    }
  });
  try {
    const response = await fetch("/stream", { method: "POST", headers, body: JSON.stringify(body), signal: controller.signal });
    if (!response.ok) {
      let message = response.statusText;
      try { message = (await response.json()).error.message; } catch {}
      throw new Error(message);
    }
    const reader = response.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(value);
    }
    parser.end();
    paint();
    if (!ended) { bubble("error", "error: the stream ended early"); show("incomplete"); }
  } catch (err) {
    if (err.name === "AbortError") {
      suffix = document.createElement("div");
      suffix.className = "note"; suffix.textContent = "[stopped]";
      paint(); show("stopped");
    }
    else { bubble("error", "error: " + err.message); show("error"); }
  } finally {
    if (text) history.push({ role: "assistant", content: text });
    else history.pop();
    if (!reasoning.textContent) reasoning.remove();
    controller = null;
    $("stop").disabled = true; $("send").disabled = false;
  }
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt || controller) return;
  $("prompt").value = "";
  send(prompt);
});
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
