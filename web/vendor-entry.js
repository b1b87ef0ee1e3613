// What the console's pages import from the vendored bundle (assets/vendor/console/vendor.js):
// CodeMirror 6 with a language mode for each of CodeBeaker's languages, and uPlot for charts.
// Built by scripts/vendor.sh; the pages never load anything from the internet.
export { EditorView, basicSetup } from "codemirror";
export { keymap } from "@codemirror/view";
export { Compartment, EditorState } from "@codemirror/state";
export { StreamLanguage } from "@codemirror/language";
export { cpp } from "@codemirror/lang-cpp";
export { go } from "@codemirror/lang-go";
export { java } from "@codemirror/lang-java";
export { javascript } from "@codemirror/lang-javascript";
export { php } from "@codemirror/lang-php";
export { python } from "@codemirror/lang-python";
export { rust } from "@codemirror/lang-rust";
export { csharp } from "@codemirror/legacy-modes/mode/clike";
export { lua } from "@codemirror/legacy-modes/mode/lua";
export { ruby } from "@codemirror/legacy-modes/mode/ruby";
export { shell } from "@codemirror/legacy-modes/mode/shell";
export { default as uPlot } from "uplot";
