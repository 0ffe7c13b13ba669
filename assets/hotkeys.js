// Review-tab keyboard shortcuts: 1-9 and 0 pick a class (then q, w, e... if there are more: each class button's id
// says its key, classifier.classes.class_keys), n = none, Enter = accept, arrows = previous/next, Ctrl+Z = undo,
// x = leave the photo out: it shows the reasons, and while they show 1-4 pick one (that is the decision).
// They click the tab's own buttons, so every shortcut goes through the same server-side checks.
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
  if (!document.getElementById("review-panel") || !document.getElementById("review-panel").offsetParent) return;
  let id = null;
  const reasons = document.getElementById("rv-out-reason");
  if (reasons && reasons.offsetParent && /^[1-9]$/.test(event.key) && !event.ctrlKey && !event.metaKey) {
    const pick = reasons.querySelectorAll("input[type=radio]")[Number(event.key) - 1];  // a reason, not a class
    if (pick) {
      event.preventDefault();
      pick.click();
    }
    return;
  }
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") id = "rv-undo";
  else if (event.ctrlKey || event.metaKey || event.altKey) return;
  else if (event.key === "x" || event.key === "X") id = "rv-leave-out";
  else if (/^[0-9a-z]$/i.test(event.key) && event.key.toLowerCase() !== "n") id = "rv-class-" + event.key.toLowerCase();
  else if (event.key === "n" || event.key === "N") id = "rv-none";
  else if (event.key === "Enter") id = "rv-accept";
  else if (event.key === "ArrowLeft") id = "rv-prev";
  else if (event.key === "ArrowRight") id = "rv-next";
  const button = id && document.getElementById(id);
  if (button) {
    event.preventDefault();
    button.click();
  }
});
