// Pieces the dashboard's tables and forms share (the Manage tab, the alert
// rules): table cells, buttons, a change that reports the API's error by
// field, and a two-step "Delete" button.
"use strict";

const pageParts = (() => {
  /** A table cell holding `content`: a node, or text. */
  function cell(content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content);
    else td.textContent = content ?? "";
    return td;
  }

  function button(text, onClick, className = "") {
    const element = document.createElement("button");
    element.type = "button";
    element.textContent = text;
    element.className = className;
    element.addEventListener("click", onClick);
    return element;
  }

  /** Runs `change`, then `reload`; an error is shown in the element
   * `errorId`, naming the field the API named. */
  async function attempt(errorId, change, reload) {
    const error = document.getElementById(errorId);
    error.textContent = "";
    try {
      await change();
      await reload();
    } catch (failure) {
      error.textContent = failure.field ? `${failure.field}: ${failure.message}` : failure.message;
    }
  }

  /** A "Delete" button in two steps: the first press asks ("Delete for
   * good"), the second calls `remove`. */
  function deleteButton(remove) {
    const element = button("Delete", () => {
      if (element.dataset.armed) {
        remove();
      } else {
        element.dataset.armed = "yes";
        element.textContent = "Delete for good";
      }
    }, "secondary");
    return element;
  }

  return { cell, button, attempt, deleteButton };
})();
