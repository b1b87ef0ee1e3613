// What the console's pages import from the vendored bundle (assets/vendor/console/vendor.js):
// CodeMirror 6 with a language mode for CodeBeaker's languages (those CodeMirror has a mode
// for: all but nasm, ada, prolog, elixir, nim and zig), and uPlot for charts.
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
export { csharp, kotlin, scala } from "@codemirror/legacy-modes/mode/clike";
export { lua } from "@codemirror/legacy-modes/mode/lua";
export { ruby } from "@codemirror/legacy-modes/mode/ruby";
export { shell } from "@codemirror/legacy-modes/mode/shell";
export { clojure } from "@codemirror/legacy-modes/mode/clojure";
export { cobol } from "@codemirror/legacy-modes/mode/cobol";
export { commonLisp } from "@codemirror/legacy-modes/mode/commonlisp";
export { crystal } from "@codemirror/legacy-modes/mode/crystal";
export { d } from "@codemirror/legacy-modes/mode/d";
export { erlang } from "@codemirror/legacy-modes/mode/erlang";
export { fortran } from "@codemirror/legacy-modes/mode/fortran";
export { groovy } from "@codemirror/legacy-modes/mode/groovy";
export { haskell } from "@codemirror/legacy-modes/mode/haskell";
export { oCaml } from "@codemirror/legacy-modes/mode/mllike";
export { octave } from "@codemirror/legacy-modes/mode/octave";
export { pascal } from "@codemirror/legacy-modes/mode/pascal";
export { perl } from "@codemirror/legacy-modes/mode/perl";
export { r } from "@codemirror/legacy-modes/mode/r";
export { scheme } from "@codemirror/legacy-modes/mode/scheme";
export { sqlite } from "@codemirror/legacy-modes/mode/sql";
export { tcl } from "@codemirror/legacy-modes/mode/tcl";
export { default as uPlot } from "uplot";
