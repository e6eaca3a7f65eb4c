// The playground page: a Discord channel view fed live by the local Discord over a WebSocket.
"use strict";
(function () {
  const md = window.DiscordMarkdown;
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "html") node.innerHTML = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
    return node;
  };
  const OPTION_TYPES = { 3: "text", 4: "integer", 5: "true/false", 6: "member", 7: "channel", 8: "role", 9: "mentionable", 10: "number", 11: "file" };
  const REACTION_PALETTE = ["🔄", "🔍", "🎨", "❌", "1️⃣", "2️⃣", "3️⃣", "4️⃣", "📖", "👍", "❤️", "😂"];

  const state = {
    ws: null, ready: false, connected: false, bot: null, guild: null, channels: [], members: [], commands: [], flat: [],
    messages: new Map(), problems: [], notices: [], channelId: null, userId: null, requestId: 0, pending: new Map(),
    popup: { mode: null, items: [], index: 0, moved: false }, autocompleteTimer: null, autocompleteSeq: 0, unread: new Map(),
  };

  // -- ids and people ---------------------------------------------------------------------------
  const byId = (a, b) => (a.length - b.length) || (a < b ? -1 : a > b ? 1 : 0);
  const memberName = (id) => {
    if (state.bot && id === state.bot.id) return state.bot.name;
    const m = state.members.find((x) => x.id === id);
    return m ? m.name : null;
  };
  md.lookup.user = memberName;
  md.lookup.channel = (id) => (state.channels.find((c) => c.id === id) || {}).name;
  const colorFor = (id) => ["#5865f2", "#3ba55c", "#faa61a", "#ed4245", "#eb459e", "#747f8d"][Number(BigInt(id) % 6n)];

  // -- the socket -------------------------------------------------------------------------------
  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/playground/ws`);
    state.ws = ws;
    ws.onopen = () => { state.connected = true; updateStatus(); };
    ws.onclose = () => { state.connected = false; state.ready = false; updateStatus(); setTimeout(connect, 1000); };
    ws.onmessage = (event) => handle(JSON.parse(event.data));
  }

  function send(action) {
    return new Promise((resolve) => {
      const id = ++state.requestId;
      state.pending.set(id, resolve);
      state.ws.send(JSON.stringify({ ...action, request_id: id, user_id: state.userId }));
    });
  }

  function handle(data) {
    if (data.type === "hello") return hello(data);
    if (data.type === "result") {
      const resolve = state.pending.get(data.request_id);
      state.pending.delete(data.request_id);
      if (resolve) resolve(data);
      return;
    }
    if (data.type === "batch") {
      let channelDirty = false;
      for (const event of data.events) channelDirty = apply(event) || channelDirty;
      if (channelDirty) renderChannelList();
      return;
    }
    apply(data);
  }

  function hello(data) {
    state.guild = data.guild;
    state.bot = data.bot;
    state.channels = data.channels;
    state.members = data.members;
    state.messages = new Map(data.messages.map((m) => [m.id, m]));
    state.problems = data.problems;
    state.ready = data.ready;
    setCommands(data.commands);
    if (!state.channelId || !state.channels.some((c) => c.id === state.channelId)) state.channelId = state.channels[0].id;
    if (!state.userId || !state.members.some((m) => m.id === state.userId)) state.userId = state.members[0].id;
    $("#guild-name").textContent = data.guild.name;
    renderMembers();
    renderChannelList();
    renderProblems();
    renderChannel();
    updateStatus();
  }

  function apply(event) {
    switch (event.type) {
      case "message": {
        const m = event.message;
        const isNew = !state.messages.has(m.id);
        if (m.deleted) state.messages.delete(m.id);
        else state.messages.set(m.id, m);
        if (m.channel_id === state.channelId) renderMessage(m, isNew);
        else if (isNew && !m.deleted && visible(m)) {
          state.unread.set(m.channel_id, (state.unread.get(m.channel_id) || 0) + 1);
          return true;
        }
        return false;
      }
      case "problem":
        state.problems.push(event.text);
        renderProblems();
        return false;
      case "commands":
        setCommands(event.commands);
        updateStatus();
        return false;
      case "ready":
        if (state.ready !== event.ready) { state.ready = event.ready; updateStatus(); }
        return false;
      case "notice":
        state.notices.push({ ...event, id: `notice-${state.notices.length}`, at: Date.now() });
        if (event.channel_id === state.channelId) renderChannel();
        return false;
    }
    return false;
  }

  function updateStatus() {
    const status = $("#status");
    const usable = state.connected && state.ready && state.commands.length > 0;
    status.textContent = !state.connected ? "connecting…" : !state.ready ? "the bot is starting…" : state.commands.length ? `${state.bot.name} is online` : "the bot is registering its commands…";
    status.classList.toggle("ready", usable);
    const composer = $("#composer");
    composer.disabled = !state.connected;
    composer.placeholder = usable ? `Message #${channel().name} — type / for commands` : "Waiting for the bot…";
    document.body.dataset.ready = usable ? "1" : "0";
  }

  // -- commands ---------------------------------------------------------------------------------
  function setCommands(commands) {
    state.commands = commands.filter((c) => (c.type || 1) === 1);
    const flat = [];
    for (const c of state.commands) {
      const opts = c.options || [];
      if (!opts.some((o) => o.type === 1 || o.type === 2)) {
        flat.push({ path: c.name, name: c.name, group: null, subcommand: null, description: c.description, options: opts });
        continue;
      }
      for (const o of opts) {
        if (o.type === 1) flat.push({ path: `${c.name} ${o.name}`, name: c.name, group: null, subcommand: o.name, description: o.description, options: o.options || [] });
        if (o.type === 2) for (const s of o.options || []) {
          flat.push({ path: `${c.name} ${o.name} ${s.name}`, name: c.name, group: o.name, subcommand: s.name, description: s.description, options: s.options || [] });
        }
      }
    }
    flat.sort((a, b) => a.path.localeCompare(b.path));
    state.flat = flat;
  }

  function matchCommand(text) {
    if (!text.startsWith("/")) return null;
    let best = null;
    for (const entry of state.flat) {
      const head = `/${entry.path}`;
      if ((text === head || text.startsWith(head + " ")) && (!best || entry.path.length > best.path.length)) best = entry;
    }
    return best;
  }

  function parseOptions(entry, text) {
    const rest = text.slice(entry.path.length + 1);
    const names = entry.options.filter((o) => o.type !== 11).map((o) => o.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    const found = [];
    if (names.length) {
      const re = new RegExp(`(^|\\s)(${names.join("|")}):`, "g");
      let m;
      while ((m = re.exec(rest))) found.push({ name: m[2], start: m.index + m[1].length, valueStart: m.index + m[0].length });
    }
    const values = {};
    found.forEach((f, i) => {
      const end = i + 1 < found.length ? found[i + 1].start : rest.length;
      values[f.name] = rest.slice(f.valueStart, end).trim();
    });
    const last = found.length ? found[found.length - 1] : null;
    return { values, current: last ? last.name : null, currentText: last ? rest.slice(last.valueStart).replace(/^\s+/, "") : "" };
  }

  function convert(option, raw) {
    const name = option.name;
    if (option.choices && option.choices.length) {
      const hit = option.choices.find((c) => c.name.toLowerCase() === raw.toLowerCase() || String(c.value).toLowerCase() === raw.toLowerCase());
      if (!hit) throw new Error(`${name}: pick one of ${option.choices.map((c) => c.name).join(", ")}`);
      return hit.value;
    }
    switch (option.type) {
      case 4:
        if (!/^-?\d+$/.test(raw)) throw new Error(`${name} must be a whole number`);
        return Number(raw);
      case 10:
        if (!/^-?\d+(\.\d+)?$/.test(raw)) throw new Error(`${name} must be a number`);
        return Number(raw);
      case 5:
        if (/^(true|yes|on)$/i.test(raw)) return true;
        if (/^(false|no|off)$/i.test(raw)) return false;
        throw new Error(`${name} must be true or false`);
      case 6: case 9: {
        const id = (/^<@!?(\d+)>$/.exec(raw) || [])[1] || (state.members.find((m) => m.name === raw.replace(/^@/, "")) || {}).id;
        if (!id) throw new Error(`${name}: no member called ${raw}`);
        return id;
      }
      case 7: {
        const ch = state.channels.find((c) => c.name === raw.replace(/^#/, ""));
        if (!ch) throw new Error(`${name}: no channel #${raw}`);
        return ch.id;
      }
      default:
        return raw;
    }
  }

  function buildCommand(text) {
    const entry = matchCommand(text.trim());
    if (!entry) {
      const first = text.trim().split(/\s+/)[0];
      throw new Error(`${first} is not a command of ${state.bot ? state.bot.name : "the bot"}`);
    }
    const { values } = parseOptions(entry, text.trim());
    const options = {};
    for (const option of entry.options) {
      if (option.type === 11) continue;
      const raw = values[option.name];
      if (raw === undefined || raw === "") {
        if (option.required) throw new Error(`${option.name} is required`);
        continue;
      }
      options[option.name] = convert(option, raw);
    }
    return { entry, options };
  }

  async function readFiles(entry) {
    const files = {};
    for (const option of entry.options.filter((o) => o.type === 11)) {
      const input = document.querySelector(`#attachments input[data-option="${option.name}"]`);
      const file = input && input.files && input.files[0];
      if (!file) {
        if (option.required) throw new Error(`${option.name} is required: choose a file`);
        continue;
      }
      const buffer = new Uint8Array(await file.arrayBuffer());
      let binary = "";
      for (let i = 0; i < buffer.length; i += 0x8000) binary += String.fromCharCode.apply(null, buffer.subarray(i, i + 0x8000));
      files[option.name] = { filename: file.name, content_type: file.type, data: btoa(binary) };
    }
    return files;
  }

  // -- the composer -----------------------------------------------------------------------------
  const composer = $("#composer");

  function showError(text) { $("#composer-error").textContent = text || ""; }

  async function submit() {
    const text = composer.value;
    if (!text.trim()) return;
    showError("");
    if (!text.trim().startsWith("/")) {
      composer.value = "";
      const reply = await send({ type: "post", channel_id: state.channelId, content: text });
      if (!reply.ok) showError(reply.error);
      return;
    }
    let built, files;
    try {
      built = buildCommand(text);
      files = await readFiles(built.entry);
    } catch (error) {
      showError(error.message);
      return;
    }
    composer.value = "";
    closePopup();
    renderAttachmentInputs(null);
    const { entry, options } = built;
    const reply = await send({
      type: "command", channel_id: state.channelId, name: entry.name, group: entry.group,
      subcommand: entry.subcommand, options, attachments: files,
    });
    if (!reply.ok) { showError(reply.error); composer.value = text; }
  }

  function renderAttachmentInputs(entry) {
    const box = $("#attachments");
    const wanted = entry ? entry.options.filter((o) => o.type === 11) : [];
    const key = wanted.map((o) => o.name).join(",") + (entry ? entry.path : "");
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    box.replaceChildren(...wanted.map((o) => el("label", { title: o.description },
      el("span", {}, o.name, o.required ? el("span", { class: "required" }, " *") : null),
      el("input", { type: "file", "data-option": o.name, accept: "image/*" }))));
    box.hidden = wanted.length === 0;
  }

  function closePopup() { state.popup.mode = null; $("#popup").hidden = true; }

  function refreshPopup() {
    const text = composer.value;
    const popup = state.popup;
    popup.moved = false;
    popup.index = 0;
    if (!text.startsWith("/")) { renderAttachmentInputs(null); return closePopup(); }
    const entry = matchCommand(text);
    renderAttachmentInputs(entry);
    if (!entry || (!text.includes(" ") && state.flat.some((f) => f.path !== entry.path && `/${f.path}`.startsWith(text)))) {
      const typed = text.slice(1).toLowerCase();
      const items = state.flat.filter((f) => f.path.startsWith(typed) || f.path.includes(typed));
      return showPopup("commands", "Commands of " + (state.bot ? state.bot.name : "the bot"), items.map((f) => ({
        label: `/${f.path}`, desc: f.description, insert: `/${f.path} `, entry: f,
      })));
    }
    const { values, current, currentText } = parseOptions(entry, text);
    const option = entry.options.find((o) => o.name === current);
    const atEndOfValue = option && !/\s[\w-]*$/.test(" " + currentText) || (option && currentText === "");
    if (option && option.choices && option.choices.length && atEndOfValue) {
      const items = option.choices.filter((c) => c.name.toLowerCase().includes(currentText.toLowerCase()));
      return showPopup("choices", `${option.name}`, items.map((c) => ({ label: c.name, desc: "", value: c.name, option: option.name })));
    }
    if (option && option.autocomplete) return requestAutocomplete(entry, option, values);
    const missing = entry.options.filter((o) => o.type !== 11 && !(o.name in values));
    const items = missing.map((o) => ({
      label: o.name, required: o.required, desc: o.description, meta: describeOption(o), insert: `${o.name}: `, append: true,
    }));
    showPopup("options", `/${entry.path} — ${entry.description || ""}`, items);
  }

  function describeOption(o) {
    const parts = [OPTION_TYPES[o.type] || "value"];
    if (o.min_value !== undefined || o.max_value !== undefined) parts.push(`${o.min_value ?? "…"}–${o.max_value ?? "…"}`);
    if (o.choices) parts.push(`${o.choices.length} choices`);
    if (o.autocomplete) parts.push("suggestions");
    return parts.join(" · ");
  }

  function requestAutocomplete(entry, option, values) {
    clearTimeout(state.autocompleteTimer);
    const seq = ++state.autocompleteSeq;
    state.autocompleteTimer = setTimeout(async () => {
      const options = {};
      for (const o of entry.options) if (o.name in values && o.type !== 11) {
        if (o.name === option.name) options[o.name] = values[o.name];
        else try { options[o.name] = convert(o, values[o.name]); } catch (_) { /* sent as typed */ }
      }
      options[option.name] = values[option.name] || "";
      const reply = await send({ type: "autocomplete", channel_id: state.channelId, name: entry.name, group: entry.group,
        subcommand: entry.subcommand, options, focused: option.name });
      if (seq !== state.autocompleteSeq) return;
      if (!reply.ok) return showPopup("choices", `${option.name}: ${reply.error}`, []);
      showPopup("choices", `${option.name} — suggestions from ${state.bot.name}`,
        reply.choices.map((c) => ({ label: c.name, value: String(c.value), option: option.name })));
    }, 120);
  }

  function showPopup(mode, title, items) {
    const popup = state.popup;
    popup.mode = mode;
    popup.items = items;
    const box = $("#popup");
    box.replaceChildren(el("div", { class: "popup-title" }, title), ...items.map((item, i) => el("div", {
      class: "item", role: "option", "aria-selected": i === popup.index ? "true" : "false",
      onmousedown: (e) => { e.preventDefault(); popup.index = i; accept(); },
    }, el("span", { class: "item-name" }, item.label, item.required ? el("span", { class: "required" }, " *") : null),
       item.desc ? el("span", { class: "item-desc" }, item.desc) : null,
       item.meta ? el("span", { class: "item-meta" }, item.meta) : null)));
    box.hidden = items.length === 0 && mode !== "choices";
  }

  function moveSelection(delta) {
    const popup = state.popup;
    if (!popup.items.length) return;
    popup.index = (popup.index + delta + popup.items.length) % popup.items.length;
    popup.moved = true;
    document.querySelectorAll("#popup .item").forEach((node, i) => node.setAttribute("aria-selected", i === popup.index ? "true" : "false"));
  }

  function accept() {
    const popup = state.popup;
    const item = popup.items[popup.index];
    if (!item) return false;
    const text = composer.value;
    if (popup.mode === "commands") composer.value = item.insert;
    else if (popup.mode === "options") composer.value = text.replace(/\s*$/, " ") + item.insert;
    else if (popup.mode === "choices") {
      const entry = matchCommand(text);
      const { current } = parseOptions(entry, text);
      const idx = text.lastIndexOf(`${current}:`);
      composer.value = `${text.slice(0, idx)}${current}: ${item.value} `;
    }
    composer.focus();
    refreshPopup();
    return true;
  }

  composer.addEventListener("input", refreshPopup);
  composer.addEventListener("keydown", (e) => {
    const open = state.popup.mode && !$("#popup").hidden && state.popup.items.length;
    if (e.key === "ArrowDown" && open) { e.preventDefault(); moveSelection(1); }
    else if (e.key === "ArrowUp" && open) { e.preventDefault(); moveSelection(-1); }
    else if (e.key === "Tab" && open && !e.shiftKey) { e.preventDefault(); accept(); }
    else if (e.key === "Escape") closePopup();
    else if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      if (open && (state.popup.mode === "commands" && !matchCommand(composer.value.trim()) || state.popup.moved)) accept();
      else submit();
    }
  });
  composer.addEventListener("blur", () => setTimeout(closePopup, 150));
  composer.addEventListener("focus", refreshPopup);

  // -- rendering --------------------------------------------------------------------------------
  const channel = () => state.channels.find((c) => c.id === state.channelId) || { name: "" };

  function visible(m) { return !m.ephemeral || m.visible_to === state.userId; }

  function renderMembers() {
    const select = $("#member");
    select.replaceChildren(...state.members.map((m) => el("option", { value: m.id, selected: m.id === state.userId },
      `${m.name} (${m.role === "owner" ? "server owner" : m.role === "moderator" ? "moderator" : "member"})`)));
    const me = state.members.find((m) => m.id === state.userId);
    $("#me-role").textContent = me ? ({ owner: "Owns the server: every permission", moderator: "Moderator role: Manage Messages", member: "Plain member" })[me.role] : "";
  }

  function renderChannelList() {
    $("#channels").replaceChildren(...state.channels.map((c) => el("li", {}, el("button", {
      type: "button", "aria-current": c.id === state.channelId ? "true" : "false", "data-channel": c.name,
      onclick: () => { state.channelId = c.id; state.unread.delete(c.id); renderChannelList(); renderChannel(); updateStatus(); composer.focus(); },
    }, el("span", { class: "hash" }, "#"), c.name, c.nsfw ? el("span", { class: "nsfw-tag", title: "Age-restricted channel" }, "18+") : null,
    state.unread.get(c.id) ? el("span", { class: "unread" }, String(state.unread.get(c.id))) : null))));
  }

  function renderProblems() {
    const count = state.problems.length;
    const toggle = $("#problems-toggle");
    toggle.hidden = count === 0;
    toggle.textContent = `⚠ ${count} problem${count === 1 ? "" : "s"}`;
    $("#problems").hidden = count === 0 || toggle.dataset.collapsed === "1";
    $("#problem-list").replaceChildren(...state.problems.map((p) => el("li", { class: "problem" }, p)));
  }
  $("#problems-toggle").addEventListener("click", () => {
    const t = $("#problems-toggle");
    t.dataset.collapsed = t.dataset.collapsed === "1" ? "0" : "1";
    renderProblems();
  });

  function renderChannel() {
    const c = channel();
    $("#channel-name").textContent = c.name;
    $("#channel-badge").replaceChildren(c.nsfw ? el("span", { class: "nsfw-tag" }, "age-restricted") : "");
    const list = [...state.messages.values()].filter((m) => m.channel_id === state.channelId && visible(m));
    list.sort((a, b) => byId(a.id, b.id));
    const box = $("#messages");
    box.replaceChildren(...list.map(messageNode), ...state.notices.filter((n) => n.channel_id === state.channelId && n.user_id === state.userId).map(noticeNode));
    box.scrollTop = box.scrollHeight;
  }

  // Every state a message was shown in, oldest first (for tests and for looking back in the console).
  const history = [];
  window.playground = { history, state };

  function renderMessage(m, isNew) {
    history.push({ id: m.id, deleted: !!m.deleted, content: m.content || "", loading: !!m.loading, at: performance.now() });
    const box = $("#messages");
    const old = box.querySelector(`.message[data-id="${m.id}"]`);
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
    if (m.deleted || !visible(m)) { if (old) old.remove(); return; }
    const node = messageNode(m);
    if (old) old.replaceWith(node);
    else {
      const after = [...box.querySelectorAll(".message[data-id]")].find((n) => byId(n.dataset.id, m.id) > 0);
      box.insertBefore(node, after || null);
    }
    if (nearBottom || isNew) box.scrollTop = box.scrollHeight;
  }

  function noticeNode(n) {
    return el("article", { class: "message ephemeral system", "data-notice": n.id },
      el("div", { class: "avatar", style: "background:#ed4245" }, "!"),
      el("div", { class: "body" }, el("div", { class: "content" }, n.text),
        el("div", { class: "ephemeral-note" }, "👁 Only you can see this")));
  }

  function when(iso) {
    const d = new Date(iso);
    return `Today at ${d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
  }

  function messageNode(m) {
    const author = m.author || {};
    const name = memberName(author.id) || author.global_name || author.username || "unknown";
    const meta = m.interaction_metadata;
    const body = el("div", { class: "body" });
    if (meta && meta.type === 2) {
      body.append(el("div", { class: "used" }, "↱ ", el("span", { class: "who" }, meta.user.global_name || meta.user.username), " used ",
        el("span", { class: "mention" }, `/${meta.name || (m.interaction || {}).name || "command"}`)));
    }
    body.append(el("div", { class: "head" }, el("span", { class: "author" }, name), author.bot ? el("span", { class: "app-tag" }, "APP") : null,
      el("span", { class: "time", title: m.timestamp }, when(m.timestamp))));
    if (m.loading) body.append(el("div", { class: "content thinking" }, `${name} is thinking`));
    else if (m.content) {
      const content = el("div", { class: "content", html: md.render(m.content, { links: true, blocks: true }) });
      if (m.edited) content.append(el("span", { class: "edited", title: "edited" }, "(edited)"));
      body.append(content);
    } else if (m.edited && !(m.embeds || []).length) body.append(el("span", { class: "edited" }, "(edited)"));
    const embedded = new Set();
    for (const e of m.embeds || []) { for (const k of ["image", "thumbnail"]) if (e[k] && e[k].url) embedded.add(e[k].url); }
    for (const e of m.flags & 4 ? [] : m.embeds || []) body.append(embedNode(e));
    for (const a of m.attachments || []) if (!embedded.has(a.url)) body.append(attachmentNode(a));
    if ((m.components || []).length) body.append(componentsNode(m));
    if (!m.ephemeral) body.append(reactionsNode(m));
    if (m.ephemeral) {
      body.append(el("div", { class: "ephemeral-note" }, "👁 Only you can see this · ",
        el("a", { tabindex: "0", onclick: () => { state.messages.delete(m.id); renderChannel(); } }, "Dismiss message")));
    }
    return el("article", { class: `message${m.ephemeral ? " ephemeral" : ""}`, "data-id": m.id },
      el("div", { class: "avatar", style: `background:${colorFor(author.id || "0")}` }, author.bot ? "🤖" : name.slice(0, 1).toUpperCase()), body);
  }

  function embedNode(e) {
    const color = e.color !== undefined && e.color !== null ? `#${Number(e.color).toString(16).padStart(6, "0")}` : "#1e1f22";
    const node = el("div", { class: "embed", style: `border-left-color:${color}` });
    if (e.thumbnail && e.thumbnail.url) node.append(el("img", { class: "thumb", src: e.thumbnail.url, alt: "" }));
    if (e.author && e.author.name) node.append(el("div", { class: "embed-author", html: md.render(e.author.name, { links: false, blocks: false }) }));
    if (e.title) {
      const title = md.render(e.title, { links: false, blocks: false });
      node.append(el("div", { class: "embed-title" }, e.url ? el("a", { href: e.url, target: "_blank", rel: "noreferrer", html: title }) : el("span", { html: title })));
    }
    if (e.description) node.append(el("div", { class: "embed-desc", html: md.render(e.description, { links: true, blocks: true }) }));
    if ((e.fields || []).length) {
      node.append(el("div", { class: "embed-fields" }, ...e.fields.map((f) => el("div", { class: `embed-field${f.inline ? " inline" : ""}` },
        el("div", { class: "embed-field-name", html: md.render(f.name, { links: false, blocks: false }) }),
        el("div", { class: "embed-field-value", html: md.render(f.value, { links: true, blocks: false }) })))));
    }
    if (e.image && e.image.url) {
      node.append(el("img", { class: "embed-image", src: e.image.url, alt: "", width: e.image.width || null, height: e.image.height || null }));
    }
    if ((e.footer && e.footer.text) || e.timestamp) {
      node.append(el("div", { class: "embed-footer" }, e.footer ? e.footer.text : "", e.footer && e.timestamp ? " • " : "", e.timestamp ? when(e.timestamp) : ""));
    }
    return node;
  }

  function attachmentNode(a) {
    const spoiler = a.filename.startsWith("SPOILER_");
    if ((a.content_type || "").startsWith("image/")) {
      const img = el("img", { class: `attachment-img${spoiler ? " spoiled" : ""}`, src: a.url, alt: a.description || a.filename,
        title: spoiler ? "Spoiler: click to reveal" : a.filename, width: a.width, height: a.height, tabindex: spoiler ? "0" : null });
      img.addEventListener("click", () => { if (img.classList.contains("spoiled")) img.classList.remove("spoiled"); else window.open(a.url, "_blank"); });
      return img;
    }
    return el("div", { class: "file" }, "📄 ", el("a", { href: a.url, target: "_blank" }, a.filename), ` ${(a.size / 1024).toFixed(1)} KB`);
  }

  function componentsNode(m) {
    const box = el("div", { class: "components" });
    const button = (c) => {
      const emoji = c.emoji ? (c.emoji.id ? `:${c.emoji.name}:` : c.emoji.name) : null;
      if (c.style === 5) return el("a", { class: "btn s5", href: c.url, target: "_blank", rel: "noreferrer" }, emoji, c.label, " ↗");
      const node = el("button", { type: "button", class: `btn s${c.style || 2}`, disabled: !!c.disabled, "data-custom-id": c.custom_id,
        "aria-label": [emoji, c.label].filter(Boolean).join(" ") }, emoji, c.label);
      node.addEventListener("click", async () => {
        node.classList.add("pending");
        const reply = await send({ type: "click", message_id: m.id, custom_id: c.custom_id });
        node.classList.remove("pending");
        if (!reply.ok) showError(reply.error);
      });
      return node;
    };
    const select = (c) => el("select", { class: "select", disabled: true, title: "select menus are shown, not sent, by the playground" },
      el("option", {}, c.placeholder || "Make a selection"), ...(c.options || []).map((o) => el("option", {}, o.label)));
    for (const row of m.components) {
      if (row.type !== 1) continue;
      box.append(el("div", { class: "row" }, ...(row.components || []).map((c) => (c.type === 2 ? button(c) : select(c)))));
    }
    return box;
  }

  function reactionsNode(m) {
    const users = m.reaction_users || {};
    const box = el("div", { class: "reactions" });
    for (const [emoji, who] of Object.entries(users)) {
      if (!who.length) continue;
      const mine = who.includes(state.userId);
      const label = /^\w+:\d+$/.test(emoji) ? `:${emoji.split(":")[0]}:` : emoji;
      box.append(el("button", { type: "button", class: `reaction${mine ? " mine" : ""}`, "data-emoji": emoji, "aria-pressed": mine ? "true" : "false",
        title: who.map(memberName).join(", "), onclick: () => react(m, emoji, !mine) }, label, el("span", { class: "count" }, String(who.length))));
    }
    const add = el("button", { type: "button", class: "reaction add-reaction", title: "Add reaction", "aria-label": "Add reaction" }, "☺+");
    add.addEventListener("click", () => {
      const open = box.querySelector(".palette");
      if (open) return open.remove();
      const palette = el("div", { class: "palette" }, ...REACTION_PALETTE.map((emoji) => el("button", { type: "button", "data-emoji": emoji, "aria-label": `React ${emoji}`,
        onclick: () => { palette.remove(); react(m, emoji, !(users[emoji] || []).includes(state.userId)); } }, emoji)));
      box.append(palette);
      palette.querySelector("button").focus();
    });
    box.append(add);
    return box;
  }

  async function react(m, emoji, add) {
    const reply = await send({ type: "react", message_id: m.id, emoji, add });
    if (!reply.ok) showError(reply.error);
  }

  // Stay at the newest message while images load, unless the reader scrolled up.
  let stick = true;
  const scroller = $("#messages");
  scroller.addEventListener("scroll", () => { stick = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120; });
  scroller.addEventListener("load", () => { if (stick) scroller.scrollTop = scroller.scrollHeight; }, true);

  $("#member").addEventListener("change", (e) => { state.userId = e.target.value; renderMembers(); renderChannel(); });
  document.addEventListener("click", (e) => { if (e.target.classList && e.target.classList.contains("spoiler")) e.target.classList.add("revealed"); });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target.classList && e.target.classList.contains("spoiler")) e.target.classList.add("revealed");
  });
  setInterval(() => document.querySelectorAll("time.ts[data-style='R']").forEach((t) => { t.textContent = md.timestamp(Number(t.dataset.ts), "R"); }), 1000);
  connect();
})();
