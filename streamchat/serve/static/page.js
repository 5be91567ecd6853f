"use strict";
// Model text reaches the page as textContent, or as markdown-it's output sanitized by DOMPurify.
const token = new URLSearchParams(location.search).get("token");
const $ = (id) => document.getElementById(id);
const history = [];  // single mode's conversation
const compared = new Map();  // compare mode: each model's own conversation, model → messages
const LETTERS = "ABC";
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

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function bubble(role, text, parent = $("log")) {
  const div = element("div", "msg " + role, text);
  parent.appendChild(div);
  return div;
}

function headers() {
  const h = { "Content-Type": "application/json" };
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function refusal(response) {
  try { return (await response.json()).error.message; } catch { return response.statusText; }
}

// POST a JSON body with the page's headers; a refused request throws with the server's message.
async function post(path, body, signal) {
  const response = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body), signal });
  if (!response.ok) throw new Error(await refusal(response));
  return response;
}

// As `streamchat.cost.money`: "$0", 4 decimals under a dollar, 2 above.
function money(value) {
  return value === 0 ? "$0" : "$" + value.toFixed(value < 1 ? 4 : 2);
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

const MIN_RATE_MS = 100;  // events.MIN_RATE_MS: the CLI's floor (tests/test_gaps2.py keeps them equal)

// One answer, streamed from POST /stream into `parent` (reasoning dimmed, the answer as Markdown,
// an error line) with its stats in `stats`. Single mode and each compare column run through it.
// Resolves to { text, ok } once the stream has ended, however it ended.
async function streamAnswer(parent, stats, body, signal) {
  const reasoning = bubble("reasoning", "", parent);
  const answer = bubble("assistant", "", parent);
  let text = "", first = 0, tokens = 0, cost = null, scheduled = false, suffix = null, ended = false, ok = false;
  let served = undefined;  // serve's tokens_per_s from `done` (null: too short to measure), over the page's estimate
  // A frame already scheduled may run after the stream ends: every paint re-adds the suffix.
  const paint = () => { scheduled = false; renderMarkdown(answer, text); if (suffix) answer.appendChild(suffix); };
  const schedule = () => { if (!scheduled) { scheduled = true; requestAnimationFrame(paint); } };
  const started = performance.now();
  stats.textContent = "waiting…";
  function show(final) {
    const now = performance.now();
    const ttft = first ? (first - started).toFixed(0) + " ms" : "–";
    // no rate over less than MIN_RATE_MS of generation: an answer in one burst is not 40000 tok/s
    // serve's figure once `done` brings it: it times generation alone, not the network's delays and bursts
    const own = first && now - first >= MIN_RATE_MS ? (tokens / ((now - first) / 1000)).toFixed(1) : "–";
    const rate = (served === undefined ? own : served === null ? "–" : served.toFixed(1)) + " tok/s";
    stats.textContent = `TTFT ${ttft} · ${tokens} tokens · ${rate}` + (cost === null ? "" : " · " + money(cost))
      + (final ? " · " + final : "");
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
      ended = true; bubble("error", "error: " + payload.message, parent); show("error");
    } else if (name === "done") {
      ended = true; ok = true;
      if (typeof payload.cost_usd === "number") cost = payload.cost_usd;
      const tps = payload.stats ? payload.stats.tokens_per_s : undefined;
      if (typeof tps === "number" || tps === null) served = tps;
      show(payload.finish_reason || "done");
    }
  });
  try {
    const response = await post("/stream", body, signal);
    const reader = response.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(value);
    }
    parser.end();
    paint();
    if (!ended) { bubble("error", "error: the stream ended early", parent); show("incomplete"); }
  } catch (err) {
    if (err.name === "AbortError") {
      suffix = element("div", "note", "[stopped]");
      paint(); show("stopped");
    }
    else { bubble("error", "error: " + err.message, parent); show("error"); }
  } finally {
    if (!reasoning.textContent) reasoning.remove();
  }
  return { text, ok };
}

// A turn's streams share one AbortController: Stop ends them all.
async function running(work) {
  controller = new AbortController();
  $("stop").disabled = false; $("send").disabled = true;
  try { return await work(controller.signal); }
  finally { controller = null; $("stop").disabled = true; $("send").disabled = false; }
}

async function sendSingle(prompt) {
  history.push({ role: "user", content: prompt });
  bubble("user", prompt);
  const body = { messages: history };
  if ($("model").value.trim()) body.model = $("model").value.trim();
  const { text } = await running((signal) => streamAnswer($("log"), $("status"), body, signal));
  if (text) history.push({ role: "assistant", content: text });
  else history.pop();
}

function shuffled(items) {
  const out = items.slice();
  const random = new Uint32Array(out.length);
  crypto.getRandomValues(random);
  for (let i = out.length - 1; i > 0; i--) {
    const j = random[i] % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// Compare mode: one column per model, all streaming at once, each model continuing its own
// conversation. Blind: the columns are shuffled and named "Model A", "Model B"… until the vote.
async function sendCompare(prompt, models, blind) {
  bubble("user", prompt);
  const round = element("div", "round cols-" + models.length);
  $("log").appendChild(round);
  const columns = (blind ? shuffled(models) : models).map((model, i) => {
    const column = element("div", "column");
    const head = element("div", "head", blind ? "Model " + LETTERS[i] : model);
    const answer = element("div", "answer");
    const stats = element("div", "stats");
    column.append(head, answer, stats);
    round.appendChild(column);
    return { model, letter: LETTERS[i], column, head, answer, stats };
  });
  $("status").textContent = "";
  const results = await running((signal) => Promise.all(columns.map(async (c) => {
    const messages = [...(compared.get(c.model) || []), { role: "user", content: prompt }];
    const result = await streamAnswer(c.answer, c.stats, { model: c.model, messages }, signal);
    if (result.text) compared.set(c.model, [...messages, { role: "assistant", content: result.text }]);
    return result;
  })));
  if (results.every((r) => r.text)) round.appendChild(voteBar(columns, prompt, blind));
  else if (blind) reveal(columns, blind);
}

function reveal(columns, blind) {
  for (const c of columns) c.head.textContent = blind ? `Model ${c.letter}: ${c.model}` : c.model;
}

// The user's verdict on one round, stored by POST /vote; a blind round's names show once it is saved.
function voteBar(columns, prompt, blind) {
  const bar = element("div", "vote");
  const note = element("span", "note");
  const choices = columns.map((c, i) => [String(i), (blind ? "Model " + c.letter : c.model) + " is better"]);
  choices.push(["tie", "Tie"], ["bad", "Both bad"]);
  const buttons = choices.map(([choice, label]) => {
    const button = element("button", "", label);
    button.type = "button";
    button.dataset.choice = choice;
    button.addEventListener("click", () => vote(choice));
    return button;
  });
  bar.append(...buttons, note);
  async function vote(choice) {
    buttons.forEach((b) => { b.disabled = true; });
    note.textContent = "saving…";
    const winner = /^[0-9]$/.test(choice) ? columns[Number(choice)] : null;
    const body = { models: columns.map((c) => c.model), winner: winner ? winner.model : null,
                   outcome: winner ? "win" : choice, blind, prompt: prompt.slice(0, 2000) };
    try {
      await post("/vote", body);
      reveal(columns, blind);
      if (winner) winner.column.classList.add("winner");
      note.textContent = "vote saved";
    } catch (err) {
      note.textContent = "vote not saved: " + err.message;
      buttons.forEach((b) => { b.disabled = false; });
    }
  }
  return bar;
}

function chosenModels() {
  const picks = [...document.querySelectorAll("#compare select")].map((s) => s.value).filter(Boolean);
  return new Set(picks).size === picks.length && picks.length >= 2 ? picks : null;
}

// The models serve offers (GET /v1/models): suggestions in single mode, the choices in compare mode.
async function loadModels() {
  let offered = [];
  try {
    const response = await fetch("/v1/models", { headers: headers() });
    if (response.ok) offered = (await response.json()).data.map((m) => m.id);
  } catch {}
  for (const id of offered) $("offered").appendChild(element("option", "", id));
  document.querySelectorAll("#compare select").forEach((select, i) => {
    for (const id of i === 2 ? ["", ...offered] : offered) {
      const option = element("option", "", id || "(none)");
      option.value = id;
      select.appendChild(option);
    }
    select.selectedIndex = i < 2 ? Math.min(i, offered.length - 1) : 0;
  });
  if (offered.length < 2) {
    $("mode").querySelector('option[value="compare"]').disabled = true;
    $("mode").title = "compare needs two models: serve offers " + offered.length + " (see --allow-model)";
  }
}

function showMode() {
  const compare = $("mode").value === "compare";
  $("single").hidden = compare;
  $("compare").hidden = !compare;
  document.body.classList.toggle("wide", compare);
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt || controller) return;
  if ($("mode").value === "compare") {
    const models = chosenModels();
    if (!models) { $("status").textContent = "choose two or three different models"; return; }
    $("prompt").value = "";
    sendCompare(prompt, models, $("blind").checked);
  } else {
    $("prompt").value = "";
    sendSingle(prompt);
  }
});
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("mode").addEventListener("change", showMode);
showMode();
loadModels();
