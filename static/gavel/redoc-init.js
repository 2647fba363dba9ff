/* Starts Redoc (drf-spectacular-sidecar's bundle, served by Gavel) under the console's CSP.
 * - Redoc's styled-components write their CSS into <style> elements: Redoc stamps them with the
 *   nonce it is given, and only /api/v1/redoc/ allows that nonce for style elements (console/urls.py).
 * - Its search index runs in a worker made from a blob: URL, which that page's CSP allows as a worker.
 * - Its menu footer shows Redocly's logo from Redocly's CDN; Gavel loads nothing from another origin,
 *   so that one image address is pointed at Gavel's own copy of an empty image before React sets it. */
(function () {
  "use strict";
  var me = document.currentScript;
  var nonce = me.nonce || me.getAttribute("nonce") || "";
  var cdnLogo = "https://cdn.redoc.ly/redoc/logo-mini.svg";
  var ownLogo = me.dataset.logo;
  var setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (this.tagName === "IMG" && name === "src" && value === cdnLogo) { value = ownLogo; }
    return setAttribute.call(this, name, value);
  };
  var src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true, enumerable: src.enumerable, get: src.get,
    set: function (value) { src.set.call(this, value === cdnLogo ? ownLogo : value); }
  });
  var container = document.getElementById("redoc-container");
  window.Redoc.init(container.dataset.specUrl, {nonce: nonce}, container);
})();
