// The jit console works without this script. It adds "Copy" buttons, and
// shows the JIT-disabled warning as soon as the checkbox is unchecked.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  event.preventDefault();
  const source = document.getElementById(button.dataset.copy);
  if (source && navigator.clipboard) {
    navigator.clipboard.writeText(source.textContent.trim()).then(() => { button.textContent = "Copied"; });
  }
});

const jitEnabled = document.getElementById("jit-enabled");
const jitWarning = document.getElementById("jit-disabled-warning");
if (jitEnabled && jitWarning) {
  jitEnabled.addEventListener("change", () => { jitWarning.hidden = jitEnabled.checked; });
}
