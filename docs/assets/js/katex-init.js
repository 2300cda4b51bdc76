// Typeset every formula of the page with KaTeX (shipped in assets/katex): arithmatex's \( \) and \[ \] on the
// Markdown pages and the API pages, $ $ and $$ $$ in the notebooks' markdown cells. A formula KaTeX cannot parse
// is shown in red with the error (never silently dropped).
function linflowTypeset() {
  renderMathInElement(document.body, {
    delimiters: [
      {left: "$$", right: "$$", display: true},
      {left: "\\[", right: "\\]", display: true},
      {left: "$", right: "$", display: false},
      {left: "\\(", right: "\\)", display: false},
    ],
    throwOnError: false,
    errorColor: "#cc0000",
  });
}
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", linflowTypeset);
} else {
  linflowTypeset();
}
