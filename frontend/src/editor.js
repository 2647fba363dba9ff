// Gavel's code editor: every <textarea data-editor="rego|json"> becomes a CodeMirror 6 editor with
// line numbers and Rego highlighting. The textarea stays in the form, hidden and kept in step, so
// the form posts exactly what it did without JavaScript. In a form with data-check-url, the draft
// is checked by Gavel (opa check, lint, and on request the Rego tests, in its sandbox) and every
// problem is shown under its line. Styles are in static/gavel/editor.css (the CSP allows no inline style).
import { EditorState, StateEffect, StateField } from "@codemirror/state";
import { Decoration, EditorView, WidgetType, drawSelection, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, keymap, lineNumbers } from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { bracketMatching, indentOnInput, indentUnit, syntaxHighlighting } from "@codemirror/language";
import { classHighlighter } from "@lezer/highlight";
import { StyleModule } from "style-mod";
import { rego } from "./rego.js";

// CodeMirror writes its layout rules into a <style> element, which the console's CSP refuses (no
// inline styles). Put them in a constructed style sheet instead: CSSOM, not inline markup.
const codeMirrorSheet = new CSSStyleSheet();
document.adoptedStyleSheets = [...document.adoptedStyleSheets, codeMirrorSheet];
const mounted = new Set();
StyleModule.mount = (root, modules) => {
  for (const module of [].concat(modules)) {
    if (mounted.has(module)) continue;
    mounted.add(module);
    for (const rule of module.rules) codeMirrorSheet.insertRule(rule, codeMirrorSheet.cssRules.length);
  }
};

const setDiagnostics = StateEffect.define();

class Message extends WidgetType {
  constructor(diagnostic) { super(); this.diagnostic = diagnostic; }
  eq(other) { return other.diagnostic === this.diagnostic; }
  toDOM() {
    const box = document.createElement("div");
    box.className = `cm-gavel-diagnostic cm-gavel-${this.diagnostic.severity}`;
    box.setAttribute("role", this.diagnostic.severity === "error" ? "alert" : "note");
    box.dataset.row = String(this.diagnostic.row);
    const where = document.createElement("strong");
    where.textContent = `${this.diagnostic.severity === "error" ? "Error" : "Warning"}, line ${this.diagnostic.row}: `;
    box.append(where, document.createTextNode(this.diagnostic.message));
    return box;
  }
  ignoreEvent() { return false; }
}

function decorate(doc, diagnostics) {
  const ranges = [];
  for (const d of diagnostics) {
    if (!d.row || d.row > doc.lines) continue;
    const line = doc.line(d.row);
    ranges.push(Decoration.line({ class: `cm-gavel-line-${d.severity}` }).range(line.from));
    ranges.push(Decoration.widget({ widget: new Message(d), block: true, side: 1 }).range(line.to));
  }
  return Decoration.set(ranges, true);
}

const diagnosticsField = StateField.define({
  create: () => Decoration.none,
  update(value, tr) {
    value = value.map(tr.changes);
    for (const effect of tr.effects) if (effect.is(setDiagnostics)) value = decorate(tr.state.doc, effect.value);
    return value;
  },
  provide: (field) => EditorView.decorations.from(field),
});

function labelOf(textarea) {
  const label = textarea.id && document.querySelector(`label[for="${textarea.id}"]`);
  return label ? label.textContent.trim() : "Code";
}

function makeEditor(textarea, onChange) {
  const view = new EditorView({
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(), drawSelection(),
        indentOnInput(), bracketMatching(), highlightActiveLine(), indentUnit.of("\t"), EditorState.tabSize.of(4),
        rego, syntaxHighlighting(classHighlighter), diagnosticsField,
        keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
        EditorView.contentAttributes.of({ "aria-label": labelOf(textarea), spellcheck: "false" }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) {
            textarea.value = update.state.doc.toString();
            onChange(update);
          }
        }),
      ],
    }),
  });
  view.dom.classList.add(`cm-gavel-${textarea.dataset.editor}`);
  view.dom.dataset.editorFor = textarea.name;
  textarea.classList.add("cm-gavel-replaced");
  textarea.after(view.dom);
  // A label click focuses the editor, as it focused the text box.
  const label = textarea.id && document.querySelector(`label[for="${textarea.id}"]`);
  if (label) label.addEventListener("click", (event) => { event.preventDefault(); view.focus(); });
  return view;
}

function show(view, diagnostics) {
  view.dispatch({ effects: setDiagnostics.of(diagnostics) });
}

function setUpChecks(form, editors) {
  const bar = form.querySelector("[data-check-bar]");
  const status = form.querySelector("[data-check-status]");
  const general = form.querySelector("[data-check-general]");
  const button = form.querySelector("[data-check-button]");
  if (bar) bar.hidden = false;
  let timer = null;
  let asked = 0;

  function render(report, targets) {
    if (status) status.textContent = report.verdict || report.error || "";
    if (status) status.dataset.state = report.errors ? "error" : (report.warnings ? "warning" : "ok");
    const unplaced = [];
    for (const target of targets) {
      const view = editors[target];
      const mine = (report.diagnostics || []).filter((d) => d.target === target);
      if (view) show(view, mine.filter((d) => d.row && d.row <= view.state.doc.lines));
      unplaced.push(...mine.filter((d) => !view || !d.row || d.row > view.state.doc.lines));
    }
    if (general) {
      general.replaceChildren(...unplaced.map((d) => {
        const item = document.createElement("li");
        item.textContent = `${d.target === "tests" ? "Tests" : "Source"}: ${d.message}`;
        return item;
      }));
      general.hidden = unplaced.length === 0;
    }
  }

  async function check(quick) {
    const ticket = ++asked;
    const body = new FormData();
    body.append("source", editors.source ? editors.source.state.doc.toString() : "");
    body.append("tests", editors.tests ? editors.tests.state.doc.toString() : "");
    if (form.dataset.policy) body.append("policy", form.dataset.policy);
    if (quick) body.append("quick", "1");
    const token = form.querySelector("input[name=csrfmiddlewaretoken]");
    if (status) { status.textContent = quick ? "Checking…" : "Checking, with the tests…"; status.dataset.state = "busy"; }
    try {
      const response = await fetch(form.dataset.checkUrl, {
        method: "POST", body, credentials: "same-origin",
        headers: token ? { "X-CSRFToken": token.value } : {},
      });
      const report = await response.json();
      if (ticket !== asked) return;  // a newer check is on its way
      // A quick check does not run the tests: it leaves what the tests box shows alone.
      render(report, quick ? ["source"] : ["source", "tests"]);
    } catch (error) {
      if (ticket === asked && status) { status.textContent = "Gavel could not be reached to check the draft."; status.dataset.state = "error"; }
    }
  }

  if (button) button.addEventListener("click", () => check(false));
  return () => { clearTimeout(timer); timer = setTimeout(() => check(true), 1200); };
}

function start() {
  for (const form of document.querySelectorAll("form")) {
    const areas = form.querySelectorAll("textarea[data-editor]");
    if (!areas.length) continue;
    const editors = {};
    let changed = () => {};
    for (const textarea of areas) {
      editors[textarea.dataset.target || textarea.name] = makeEditor(textarea, (update) => changed(update));
    }
    if (form.dataset.checkUrl) changed = setUpChecks(form, editors);
    // The errors of a save that failed, located by the server, under their lines.
    if (form.dataset.diagnostics) {
      const diagnostics = JSON.parse(form.dataset.diagnostics);
      for (const [target, view] of Object.entries(editors)) {
        show(view, diagnostics.filter((d) => d.target === target && d.row && d.row <= view.state.doc.lines));
      }
    }
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
