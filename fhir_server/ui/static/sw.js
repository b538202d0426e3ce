// The portal's service worker: shows the appointment notifications the server pushes
// (JSON: title, body, url), tells the portal's open pages, and opens the link on click.
"use strict";

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

self.addEventListener("push", function (event) {
  var data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (error) {
    data = { body: event.data.text() };
  }
  var title = data.title || "Clinic";
  var message = { type: "push", title: title, body: data.body || "", url: data.url || "" };
  event.waitUntil(Promise.all([
    self.registration.showNotification(title, { body: message.body, data: { url: message.url } }),
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (pages) {
      pages.forEach(function (page) {
        page.postMessage(message);
      });
    }),
  ]));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = event.notification.data && event.notification.data.url;
  if (url) {
    event.waitUntil(self.clients.openWindow(url));
  }
});
