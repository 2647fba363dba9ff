// Rego for CodeMirror 6: a small stream tokenizer (keywords, strings, raw strings, comments,
// numbers, operators, input/data) and bracket-depth indentation. There is no official Rego mode.
import { StreamLanguage } from "@codemirror/language";

const KEYWORDS = new Set(["package", "import", "default", "if", "else", "contains", "some", "every", "in", "not",
  "with", "as"]);
const ATOMS = new Set(["true", "false", "null"]);
const OPEN = "{[(";
const CLOSE = "}])";

export const rego = StreamLanguage.define({
  name: "rego",
  startState: () => ({ raw: false, depth: 0 }),
  copyState: (state) => ({ raw: state.raw, depth: state.depth }),
  token(stream, state) {
    if (state.raw) {  // a raw string spanning lines
      if (stream.skipTo("`")) { stream.next(); state.raw = false; } else stream.skipToEnd();
      return "string";
    }
    if (stream.eatSpace()) return null;
    const ch = stream.peek();
    if (ch === "#") { stream.skipToEnd(); return "comment"; }
    if (ch === '"') {
      stream.next();
      let escaped = false;
      for (let c = stream.next(); c != null; c = stream.next()) {
        if (c === '"' && !escaped) break;
        escaped = !escaped && c === "\\";
      }
      return "string";
    }
    if (ch === "`") {
      stream.next();
      state.raw = true;
      if (stream.skipTo("`")) { stream.next(); state.raw = false; } else stream.skipToEnd();
      return "string";
    }
    if (stream.match(/^\d+(\.\d+)?([eE][+-]?\d+)?/)) return "number";
    if (stream.match(/^[A-Za-z_][A-Za-z0-9_]*/)) {
      const word = stream.current();
      if (KEYWORDS.has(word)) return "keyword";
      if (ATOMS.has(word)) return "atom";
      if (word === "input" || word === "data") return "variableName.special";
      if (stream.match(/^\s*\(/, false)) return "variableName.function";
      return "variableName";
    }
    if (OPEN.includes(ch)) { stream.next(); state.depth++; return "bracket"; }
    if (CLOSE.includes(ch)) { stream.next(); state.depth = Math.max(0, state.depth - 1); return "bracket"; }
    if (stream.match(/^(:=|==|!=|<=|>=|[=<>+\-*\/%|&:])/)) return "operator";
    stream.next();
    return null;
  },
  indent(state, textAfter, context) {
    const closing = textAfter && CLOSE.includes(textAfter.trim()[0]) ? 1 : 0;
    return Math.max(0, state.depth - closing) * context.unit;
  },
  languageData: { commentTokens: { line: "#" }, indentOnInput: /^\s*[}\])]$/ },
});
