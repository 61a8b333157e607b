// Upload enhancement for /assets: drag-and-drop, one request per file with a progress bar.
// The CSRF token goes in the X-CSRF-Token header, so the server streams the body without
// parsing the form first. Without this script the form posts normally.
(function () {
  "use strict";
  var form = document.querySelector("form[data-upload]");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;
  var input = form.querySelector('input[type="file"]');
  var zone = form.querySelector("[data-dropzone]");
  var list = document.querySelector("[data-upload-list]");
  var done = document.querySelector("[data-upload-done]");
  var token = form.querySelector('input[name="_csrf_token"]').value;
  var maxBytes = parseInt(form.dataset.maxBytes, 10) || 0;
  var pending = 0;

  form.querySelectorAll(".js-only").forEach(function (el) { el.hidden = false; });
  form.querySelector("[data-upload-submit]").hidden = true;

  function row(file) {
    var li = document.createElement("li");
    li.className = "upload-item";
    var name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Uploading " + file.name);
    var status = document.createElement("span");
    status.className = "upload-status";
    status.textContent = "Waiting…";
    li.append(name, bar, status);
    list.hidden = false;
    list.appendChild(li);
    return { li: li, bar: bar, status: status };
  }

  function finish(item, ok, text) {
    item.li.dataset.uploadState = ok ? "done" : "error";
    item.li.classList.add(ok ? "upload-ok" : "upload-error");
    item.status.textContent = text;
    if (ok) item.bar.value = 100;
    pending -= 1;
    if (pending === 0) done.hidden = false;
  }

  function message(xhr) {
    try {
      var body = JSON.parse(xhr.responseText);
      if (body.errors && body.errors.length) return body.errors[0].message;
    } catch (e) {}
    if (xhr.status === 413) return "The file is too large.";
    return "Upload failed (" + (xhr.status || "network error") + ").";
  }

  function send(file) {
    var item = row(file);
    pending += 1;
    if (maxBytes && file.size > maxBytes) {
      finish(item, false, "The file is larger than the " + form.dataset.maxText + " limit.");
      return;
    }
    var data = new FormData();
    data.append("file", file, file.name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-CSRF-Token", token);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) {
        item.bar.value = Math.round((event.loaded / event.total) * 100);
        item.status.textContent = item.bar.value + " %";
      }
    });
    xhr.addEventListener("load", function () {
      if (xhr.status === 201) finish(item, true, "Uploaded");
      else finish(item, false, message(xhr));
    });
    xhr.addEventListener("error", function () { finish(item, false, message(xhr)); });
    xhr.send(data);
  }

  function sendAll(files) {
    done.hidden = true;
    Array.prototype.forEach.call(files, send);
  }

  input.addEventListener("change", function () {
    sendAll(input.files);
    input.value = "";
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sendAll(input.files);
  });
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function () { zone.classList.remove("dragging"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) sendAll(event.dataTransfer.files);
  });
})();
