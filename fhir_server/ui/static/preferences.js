// Notifications on this device (the preferences page): without script the page says
// how to get them. With it: register the portal's service worker, subscribe to push with
// the server's VAPID key, and send the subscription to the portal, which registers it
// with the FHIR API ($push-subscription). Notifications the service worker receives while
// the page is open are listed on it too.
"use strict";

(function () {
  var box = document.getElementById("push");
  if (!box || !("serviceWorker" in navigator) || !("PushManager" in window)) {
    return;
  }
  var status = document.getElementById("push-status");
  var received = document.getElementById("push-received");
  var list = document.getElementById("push-list");
  box.hidden = false;
  document.getElementById("push-needs-script").hidden = true;

  function key(base64url) {
    var base64 = (base64url + "===".slice((base64url.length + 3) % 4))
      .replace(/-/g, "+").replace(/_/g, "/");
    var raw = window.atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes;
  }

  function send(subscription) {
    var json = subscription.toJSON();
    var form = new FormData(box.querySelector("form"));
    form.append("endpoint", json.endpoint);
    form.append("p256dh", json.keys.p256dh);
    form.append("auth", json.keys.auth);
    return fetch(box.getAttribute("data-action"), {
      method: "POST",
      body: form,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
  }

  navigator.serviceWorker.addEventListener("message", function (event) {
    var data = event.data || {};
    if (data.type !== "push") {
      return;
    }
    var item = document.createElement("li");
    item.textContent = data.body ? data.title + " – " + data.body : data.title;
    list.appendChild(item);
    received.hidden = false;
  });

  document.getElementById("push-on").addEventListener("click", function () {
    status.textContent = box.getAttribute("data-working");
    var asked = window.Notification && Notification.requestPermission
      ? Notification.requestPermission() : Promise.resolve("granted");
    asked.then(function () {
      return navigator.serviceWorker.register(box.getAttribute("data-worker"), {
        scope: box.getAttribute("data-scope"),
      });
    }).then(function () {
      return navigator.serviceWorker.ready;
    }).then(function (registration) {
      return registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: key(box.getAttribute("data-key")),
      });
    }).then(send).then(function (response) {
      status.textContent = box.getAttribute(response.ok ? "data-done" : "data-failed");
    }).catch(function () {
      status.textContent = box.getAttribute("data-failed");
    });
  });
})();
