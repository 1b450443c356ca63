// Progressive enhancement only: every page works without this file.
// Ctrl+Enter (or Cmd+Enter) in a text area submits its form, the way code editors do.
document.addEventListener("keydown", function (event) {
  var target = event.target;
  if ((event.ctrlKey || event.metaKey) && event.key === "Enter" && target && target.tagName === "TEXTAREA" && target.form) {
    event.preventDefault();
    if (target.form.requestSubmit) { target.form.requestSubmit(); } else { target.form.submit(); }
  }
});
