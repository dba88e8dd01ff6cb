// The sign-up form's hidden time_zone field gets the browser's IANA zone, so a
// local-time campaign can arrive at the reader's local hour. Without script the
// field stays empty and the organisation's default zone applies.
(function () {
  "use strict";
  var field = document.getElementById("time_zone");
  if (!field) { return; }
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (e) {
    field.value = "";
  }
})();
