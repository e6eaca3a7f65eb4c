// Discord's markdown, rendered the way the Discord client shows it.
// render(text, {links, blocks}): links allows masked links [text](url) (message content, embed
// descriptions and field values, as in Discord; not titles, field names, footers or authors);
// blocks allows headers, subtext, lists and quotes (message content and embed descriptions).
"use strict";
(function () {
  const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);
  const lookup = { user: () => null, channel: () => null, role: () => null };

  function relative(seconds) {
    const diff = seconds - Date.now() / 1000;
    const abs = Math.abs(diff);
    const units = [[31536000, "year"], [2592000, "month"], [86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
    for (const [size, name] of units) {
      if (abs >= size || size === 1) {
        const n = Math.max(1, Math.round(abs / size));
        const word = n === 1 ? name : name + "s";
        return diff >= 0 ? `in ${n} ${word}` : `${n} ${word} ago`;
      }
    }
    return "now";
  }

  function timestamp(seconds, style) {
    const d = new Date(seconds * 1000);
    const time = { hour: "2-digit", minute: "2-digit" };
    switch (style) {
      case "t": return d.toLocaleTimeString([], time);
      case "T": return d.toLocaleTimeString();
      case "d": return d.toLocaleDateString();
      case "D": return d.toLocaleDateString([], { dateStyle: "long" });
      case "F": return d.toLocaleString([], { dateStyle: "full", timeStyle: "short" });
      case "R": return relative(seconds);
      default: return d.toLocaleString([], { dateStyle: "long", timeStyle: "short" });
    }
  }

  function render(text, opts) {
    opts = Object.assign({ links: true, blocks: true }, opts || {});
    const saved = [];
    const keep = (html) => `\u0000${saved.push(html) - 1}\u0001`;
    let s = escapeHtml(text || "");
    // Backslash escapes, then code (nothing inside code is formatted).
    s = s.replace(/\\([*_~`|\\[\]()#>-])/g, (_, c) => keep(c));
    s = s.replace(/```(?:([\w+-]+)\n)?([\s\S]*?)```/g, (_, lang, code) =>
      keep(`<pre><code${lang ? ` data-lang="${lang}"` : ""}>${code.replace(/^\n/, "")}</code></pre>`));
    s = s.replace(/(`+)([^`][\s\S]*?)\1(?!`)/g, (_, ticks, code) => keep(`<code>${code}</code>`));
    // Links: masked where allowed (never with a URL as the text), <url> and bare URLs.
    s = s.replace(/\[([^\[\]\n]+)\]\((?:&lt;)?(https?:\/\/[^\s)]+?)(?:&gt;)?\)/g, (whole, label, url) => {
      if (!opts.links || /https?:\/\//.test(label)) return whole.replace(/https?:\/\/[^\s)]+/g, (u) => keep(u));
      return keep(`<a href="${url}" title="${url}" target="_blank" rel="noreferrer noopener">`) + label + keep("</a>");
    });
    s = s.replace(/&lt;(https?:\/\/[^\s]+?)&gt;/g, (_, url) =>
      keep(`<a href="${url}" target="_blank" rel="noreferrer noopener">${url}</a>`));
    s = s.replace(/https?:\/\/[^\s<\u0000]+[^\s<.,:;"')\]\u0000]/g, (url) =>
      keep(`<a href="${url}" target="_blank" rel="noreferrer noopener">${url}</a>`));
    // Mentions, channels, roles, custom emoji and timestamps.
    s = s.replace(/&lt;@!?(\d+)&gt;/g, (_, id) => keep(`<span class="mention">@${escapeHtml(lookup.user(id) || "unknown-user")}</span>`));
    s = s.replace(/&lt;@&amp;(\d+)&gt;/g, (_, id) => keep(`<span class="mention">@${escapeHtml(lookup.role(id) || "unknown-role")}</span>`));
    s = s.replace(/&lt;#(\d+)&gt;/g, (_, id) => keep(`<span class="mention">#${escapeHtml(lookup.channel(id) || "unknown")}</span>`));
    s = s.replace(/&lt;a?:(\w+):(\d+)&gt;/g, (_, name) => keep(`:${name}:`));
    s = s.replace(/&lt;t:(-?\d+)(?::([tTdDfFR]))?&gt;/g, (_, secs, style) =>
      keep(`<time class="ts" data-ts="${secs}" data-style="${style || "f"}">${escapeHtml(timestamp(Number(secs), style))}</time>`));
    // Block syntax, line by line.
    if (opts.blocks) {
      const quoteAll = s.search(/^&gt;&gt;&gt; /m);
      let lines = s.split("\n");
      let quoting = false;
      lines = lines.map((line) => {
        if (!quoting && quoteAll >= 0 && line.startsWith("&gt;&gt;&gt; ")) { quoting = true; line = line.slice(13); }
        let out = line;
        let m;
        if ((m = /^(#{1,3}) (.+)$/.exec(out))) out = `${keep(`<span class="md-h${m[1].length}">`)}${m[2]}${keep("</span>")}`;
        else if ((m = /^-# (.+)$/.exec(out))) out = `${keep('<span class="md-sub">')}${m[1]}${keep("</span>")}`;
        else if ((m = /^(\s*)[-*] (.+)$/.exec(out))) out = `${m[1]}• ${m[2]}`;
        if (quoting) return `${keep("<blockquote>")}${out}${keep("</blockquote>")}`;
        if ((m = /^&gt; (.*)$/.exec(out))) return `${keep("<blockquote>")}${m[1]}${keep("</blockquote>")}`;
        return out;
      });
      s = lines.join("\n").replace(/(<\/blockquote>|\u0001)\n(?=\u0000)/g, "$1\n");
    }
    // Inline formatting.
    const rules = [
      [/\*\*\*([^*][\s\S]*?)\*\*\*/g, "<strong><em>$1</em></strong>"],
      [/\*\*([^*][\s\S]*?)\*\*/g, "<strong>$1</strong>"],
      [/__([^_][\s\S]*?)__/g, "<u>$1</u>"],
      [/\*(?![\s*])([\s\S]*?[^\s*])\*(?!\*)/g, "<em>$1</em>"],
      [/(^|[^\w])_([^_\s][\s\S]*?)_(?!\w)/g, "$1<em>$2</em>"],
      [/~~([\s\S]+?)~~/g, "<s>$1</s>"],
      [/\|\|([\s\S]+?)\|\|/g, '<span class="spoiler" tabindex="0" title="Spoiler">$1</span>'],
    ];
    for (const [re, html] of rules) s = s.replace(re, html);
    // Put the kept pieces back (they may nest).
    for (let i = 0; i < 5 && s.includes("\u0000"); i++) s = s.replace(/\u0000(\d+)\u0001/g, (_, n) => saved[Number(n)]);
    return s;
  }

  window.DiscordMarkdown = { render, escapeHtml, lookup, timestamp };
})();
