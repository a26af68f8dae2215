/* The DreamFlare gallery: plain JavaScript over the store's HTTP API, no build step.
 *
 * Rules this file keeps:
 * - Content text (prompts, descriptions, tags, filenames) is hostile input: it only ever
 *   goes into the page through textContent, attributes set by setAttribute, or input
 *   values, never as HTML.
 * - The API key lives in sessionStorage (this tab only), is sent in the Authorization
 *   header, and never goes into a URL. <img> and <video> tags get signed URLs instead
 *   (POST /content/urls), which end at their expiry or when the key is revoked.
 */
"use strict";

(function () {
  var KEY_STORAGE = "dreamflare.apiKey";
  var PAGE = 50;
  var URL_LIFETIME = 3600; // seconds; URLs are renewed well before they expire
  var DEBOUNCE_MS = 250;
  // Generation fields shown first, in this order; any other field follows by name.
  var GENERATION_ORDER = [
    "prompt", "negativePrompt", "seed", "model", "modelHash", "sampler", "scheduler",
    "steps", "cfgScale", "width", "height", "loras", "generator"
  ];

  var state = {
    key: null,
    user: null,
    items: [],          // contents shown in the grid, in order
    byId: new Map(),    // content id -> content record
    urls: new Map(),    // content id -> {thumbnailUrl, dataUrl, expires (ms)}
    favorites: new Set(),
    total: 0,
    offset: 0,
    loading: false,
    generation: 0,      // bumped on each new query, so late answers to old ones are dropped
    query: "",
    filters: { model: null, lora: null, tags: [] },
    favoritesOnly: false,
    canSearch: null,    // whether the server has /content/search (null: not asked yet)
    detailId: null
  };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        if (name === "className") { node.className = attrs[name]; }
        else { node.setAttribute(name, attrs[name]); }
      });
    }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  // -- messages -----------------------------------------------------------------------

  var messageTimer = null;

  function showMessage(text, kind) {
    var box = $("message");
    $("message-text").textContent = text;
    box.className = "message" + (kind === "info" ? " info" : "");
    box.hidden = false;
    clearTimeout(messageTimer);
    if (kind === "info") {
      messageTimer = setTimeout(function () { box.hidden = true; }, 3000);
    }
  }

  function showError(error) {
    showMessage(error && error.message ? error.message : String(error), "error");
  }

  // -- the API ------------------------------------------------------------------------

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }
  ApiError.prototype = Object.create(Error.prototype);

  function query(params) {
    var parts = [];
    Object.keys(params || {}).forEach(function (name) {
      var value = params[name];
      if (value === undefined || value === null || value === "") { return; }
      (Array.isArray(value) ? value : [value]).forEach(function (one) {
        parts.push(encodeURIComponent(name) + "=" + encodeURIComponent(String(one)));
      });
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  function api(method, path, params, body, key) {
    var headers = { "Authorization": "Bearer " + (key || state.key) };
    var init = { method: method, headers: headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path + query(params), init).then(function (response) {
      if (response.status === 204) { return null; }
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (ignored) { data = null; }
        if (!response.ok) {
          var error = data && data.error ? data.error : {};
          var message = error.message || ("The server answered " + response.status + ".");
          if (response.status === 401 && path !== "/whoami") {
            signOut("Your key no longer works: " + message);
          }
          throw new ApiError(response.status, error.code || "http_error", message);
        }
        return data;
      });
    }, function () {
      throw new ApiError(0, "network", "Cannot reach the server. Is `dreamflare serve` still running?");
    });
  }

  function withUser(params) {
    var out = { userId: state.user };
    Object.keys(params || {}).forEach(function (name) { out[name] = params[name]; });
    return out;
  }

  // Signed URLs for contents that have none, or whose URLs expire within five minutes.
  function signUrls(ids) {
    var now = Date.now();
    var wanted = ids.filter(function (id) {
      var known = state.urls.get(id);
      return !known || known.expires - now < 300000;
    });
    if (!wanted.length) { return Promise.resolve(); }
    var batches = [];
    for (var i = 0; i < wanted.length; i += 100) { batches.push(wanted.slice(i, i + 100)); }
    return Promise.all(batches.map(function (batch) {
      return api("POST", "/content/urls", null, {
        userId: state.user, contentIds: batch, expiresIn: URL_LIFETIME
      }).then(function (answer) {
        answer.items.forEach(function (item) {
          state.urls.set(item.contentId, {
            thumbnailUrl: item.thumbnailUrl,
            dataUrl: item.dataUrl,
            expires: Date.parse(item.expiresAt)
          });
        });
      });
    }));
  }

  function thumbUrl(id, size, version) {
    var urls = state.urls.get(id);
    if (!urls) { return ""; }
    return urls.thumbnailUrl + "&size=" + size + (version ? "&version=" + version : "");
  }

  // -- signing in ---------------------------------------------------------------------

  function signIn(key) {
    return api("GET", "/whoami", null, undefined, key).then(function (me) {
      state.key = key;
      state.user = me.userId;
      sessionStorage.setItem(KEY_STORAGE, key);
      $("whoami").textContent = me.userId;
      $("signin").hidden = true;
      $("app").hidden = false;
      $("message").hidden = true;
      return detectFeatures().then(reload);
    });
  }

  function signOut(reason) {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    state.user = null;
    state.urls.clear();
    closeDetail();
    closeAccount();
    $("app").hidden = true;
    $("signin").hidden = false;
    $("apiKey").value = "";
    $("apiKey").focus();
    if (reason) { showMessage(reason, "error"); }
  }

  // -- the grid -----------------------------------------------------------------------

  function searchParams(offset) {
    var params = { limit: PAGE, offset: offset };
    if (state.query) { params.q = state.query; }
    if (state.filters.model) { params.model = state.filters.model; }
    if (state.filters.lora) { params.lora = state.filters.lora; }
    if (state.filters.tags.length) { params.tag = state.filters.tags.slice(); }
    if (state.favoritesOnly) { params.favorite = "true"; }
    return withUser(params);
  }

  function fetchPage(offset) {
    if (!state.canSearch) {
      return api("GET", "/content/list", withUser({ limit: PAGE, offset: offset }))
        .then(function (page) { return addShared(page, offset); });
    }
    return api("GET", "/content/search", searchParams(offset));
  }

  // Which operations this server has, from its OpenAPI document: a server without search
  // still shows a gallery (its own contents and those shared with it, newest first).
  function detectFeatures() {
    if (state.canSearch !== null) { return Promise.resolve(); }
    return fetch("/openapi.json", { cache: "no-store" }).then(function (response) {
      return response.ok ? response.json() : { paths: {} };
    }).then(function (document) {
      state.canSearch = Boolean(document.paths && document.paths["/content/search"]);
    }, function () { state.canSearch = false; }).then(updateSearchAvailability);
  }

  // Without the search endpoint, the first page also shows what others shared.
  function addShared(page, offset) {
    if (offset !== 0) { return page; }
    return api("GET", "/collaboration/list", withUser()).then(function (answer) {
      var shared = answer.items.filter(function (c) { return c.collaboratorId === state.user; });
      return Promise.all(shared.map(function (c) {
        return api("GET", "/content/" + encodeURIComponent(c.contentId), withUser())
          .catch(function () { return null; });
      })).then(function (contents) {
        var extra = contents.filter(Boolean);
        return { items: extra.concat(page.items), total: page.total + extra.length,
                 limit: page.limit, offset: page.offset };
      });
    });
  }

  function updateSearchAvailability() {
    var box = $("search");
    box.disabled = !state.canSearch;
    box.placeholder = state.canSearch ? "Search prompts, tags, models…" : "Search needs a newer server";
    $("favorites-only").disabled = !state.canSearch;
  }

  function reload() {
    state.generation += 1;
    state.items = [];
    state.byId.clear();
    state.offset = 0;
    state.total = 0;
    clear($("grid"));
    return Promise.all([loadMore(), loadFacets(), loadFavorites()]);
  }

  function loadMore() {
    if (state.loading && state.offset !== 0) { return Promise.resolve(); }
    var generation = state.generation;
    state.loading = true;
    return fetchPage(state.offset).then(function (page) {
      if (generation !== state.generation) { return null; }
      var fresh = page.items.filter(function (item) { return !state.byId.has(item.contentId); });
      return signUrls(fresh.map(function (item) { return item.contentId; })).then(function () {
        if (generation !== state.generation) { return; }
        state.total = page.total;
        state.offset += page.items.length;
        fresh.forEach(function (item) {
          state.items.push(item);
          state.byId.set(item.contentId, item);
          $("grid").appendChild(tile(item));
        });
        renderSummary();
      });
    }).catch(showError).then(function () {
      if (generation === state.generation) { state.loading = false; }
    });
  }

  function renderSummary() {
    var shown = state.items.length;
    $("summary").textContent = shown
      ? "Showing " + shown + " of " + state.total + (state.query ? " for “" + state.query + "”" : "")
      : "";
    $("empty").hidden = shown !== 0;
    if (shown === 0 && (state.query || state.favoritesOnly || state.filters.model ||
        state.filters.lora || state.filters.tags.length)) {
      $("empty").textContent = "Nothing matches.";
    } else {
      $("empty").textContent = "Nothing here yet: drop images or videos anywhere on this page, or use Upload.";
    }
    $("more").hidden = state.offset >= state.total;
  }

  function tile(item) {
    var node = el("div", {
      className: "tile", role: "listitem", tabindex: "0",
      "data-content-id": item.contentId, title: item.filename
    });
    var img = el("img", { alt: item.description || item.filename, loading: "lazy", decoding: "async",
                          width: "256", height: "256" });
    img.src = thumbUrl(item.contentId, 256);
    node.appendChild(img);
    if (item.mimeType && item.mimeType.indexOf("video/") === 0) {
      node.appendChild(el("span", { className: "badge" }, "video"));
    }
    if (item.userId !== state.user) {
      node.appendChild(el("span", { className: "badge shared" }, "shared by " + item.userId));
    }
    var star = el("button", { type: "button", className: "star", "aria-label": "Favorite",
                              "aria-pressed": "false" }, "☆");
    if (!state.canSearch) { star.hidden = true; }
    paintStar(star, state.favorites.has(item.contentId));
    star.addEventListener("click", function (event) {
      event.stopPropagation();
      toggleFavorite(item.contentId);
    });
    node.appendChild(star);
    node.appendChild(el("div", { className: "caption" }, prompt(item) || item.filename));
    node.addEventListener("click", function () { openDetail(item.contentId); });
    return node;
  }

  function prompt(item) {
    return item.generation && typeof item.generation.prompt === "string" ? item.generation.prompt : "";
  }

  function tileOf(id) {
    var found = null;
    Array.prototype.forEach.call($("grid").children, function (node) {
      if (node.getAttribute("data-content-id") === id) { found = node; }
    });
    return found;
  }

  // -- favorites ----------------------------------------------------------------------

  function loadFavorites() {
    if (!state.canSearch) { return Promise.resolve(); }
    return api("GET", "/content/search", withUser({ favorite: "true", limit: 1000 }))
      .then(function (page) {
        state.favorites = new Set(page.items.map(function (item) { return item.contentId; }));
        Array.prototype.forEach.call($("grid").children, function (node) {
          var star = node.querySelector(".star");
          if (star) { paintStar(star, state.favorites.has(node.getAttribute("data-content-id"))); }
        });
      }, function () { /* no search endpoint: no favorites */ });
  }

  function paintStar(star, on) {
    star.textContent = on ? "★" : "☆";
    star.className = "star" + (on ? " on" : "");
    star.setAttribute("aria-pressed", on ? "true" : "false");
  }

  function toggleFavorite(id) {
    var on = !state.favorites.has(id);
    return api("PUT", "/content/" + encodeURIComponent(id) + "/favorite", null,
               { userId: state.user, favorite: on }).then(function () {
      if (on) { state.favorites.add(id); } else { state.favorites.delete(id); }
      var node = tileOf(id);
      if (node) { paintStar(node.querySelector(".star"), on); }
      var detailStar = $("detail-star");
      if (detailStar && state.detailId === id) { paintStar(detailStar, on); }
    }).catch(showError);
  }

  // -- facets -------------------------------------------------------------------------

  function loadFacets() {
    var box = $("facets");
    if (!state.canSearch) { clear(box); return Promise.resolve(); }
    var params = withUser({ limit: 12 });
    if (state.query) { params.q = state.query; }
    if (state.filters.tags.length) { params.tag = state.filters.tags.slice(); }
    var generation = state.generation;
    return api("GET", "/content/facets", params).then(function (facets) {
      if (generation !== state.generation) { return; }
      clear(box);
      [["models", "model", "Models"], ["loras", "lora", "LoRAs"], ["tags", "tags", "Tags"]]
        .forEach(function (spec) {
          var values = (facets[spec[0]] || []).slice().sort(function (a, b) { return b.count - a.count; });
          if (!values.length) { return; }
          var group = el("div", { className: "facet-group", "data-facet": spec[1] });
          group.appendChild(el("h4", null, spec[2]));
          values.forEach(function (entry) {
            var on = spec[1] === "tags" ? state.filters.tags.indexOf(entry.value) >= 0
                                         : state.filters[spec[1]] === entry.value;
            var button = el("button", { type: "button", className: "facet" + (on ? " on" : ""),
                                        "data-value": entry.value });
            button.appendChild(document.createTextNode(entry.value));
            button.appendChild(el("span", { className: "count" }, entry.count));
            button.addEventListener("click", function () { toggleFilter(spec[1], entry.value); });
            group.appendChild(button);
          });
          box.appendChild(group);
        });
    }).catch(function () { clear(box); });
  }

  function toggleFilter(kind, value) {
    if (kind === "tags") {
      var at = state.filters.tags.indexOf(value);
      if (at >= 0) { state.filters.tags.splice(at, 1); } else { state.filters.tags.push(value); }
    } else {
      state.filters[kind] = state.filters[kind] === value ? null : value;
    }
    reload();
  }

  // -- the detail view ----------------------------------------------------------------

  function openDetail(id) {
    state.detailId = id;
    var overlay = $("detail");
    overlay.hidden = false;
    $("delete-confirm").hidden = true;
    clear($("detail-media"));
    clear($("generation"));
    clear($("versions"));
    clear($("shares"));
    $("detail-title").textContent = "Loading…";
    var path = "/content/" + encodeURIComponent(id);
    // Opening the detail view is the view (GET /content/{id} counts it); tiles do not.
    return Promise.all([
      api("GET", path, withUser()),
      api("GET", path + "/versions", withUser()),
      signUrls([id])
    ]).then(function (answers) {
      if (state.detailId !== id) { return; }
      var content = answers[0];
      state.byId.set(id, content);
      renderDetail(content, answers[1].items);
      $("detail-close").focus();
      return Promise.all([loadGeneration(content), loadShares(content)]);
    }).catch(function (error) {
      showError(error);
      if (error.status === 404) { closeDetail(); }
    });
  }

  function renderDetail(content, versions) {
    var id = content.contentId;
    var urls = state.urls.get(id);
    $("detail-title").textContent = content.filename;
    var media = $("detail-media");
    clear(media);
    var star = el("button", { type: "button", id: "detail-star", className: "star",
                              "aria-label": "Favorite" });
    paintStar(star, state.favorites.has(id));
    star.hidden = !state.canSearch;
    star.addEventListener("click", function () { toggleFavorite(id); });
    if (content.mimeType.indexOf("video/") === 0) {
      var video = el("video", { controls: "", preload: "metadata", playsinline: "" });
      video.setAttribute("poster", thumbUrl(id, 1024));
      video.src = urls.dataUrl;
      media.appendChild(video);
    } else if (content.mimeType.indexOf("image/") === 0 && content.mimeType !== "image/svg+xml") {
      var img = el("img", { alt: content.description || content.filename, id: "detail-image" });
      img.src = urls.dataUrl;
      media.appendChild(img);
    } else {
      var icon = el("img", { alt: content.filename, id: "detail-image" });
      icon.src = thumbUrl(id, 512);
      media.appendChild(icon);
    }
    media.appendChild(star);
    $("meta-description").value = content.description || "";
    $("meta-tags").value = (content.tags || []).join(", ");
    $("detail-facts").textContent = [
      content.mimeType,
      content.width && content.height ? content.width + "×" + content.height : "",
      humanSize(content.size),
      "version " + content.version,
      content.userId === state.user ? "yours" : "shared by " + content.userId,
      "updated " + new Date(content.updatedAt).toLocaleString()
    ].filter(Boolean).join(" · ");
    $("download").href = urls.dataUrl;
    $("download").setAttribute("download", content.filename);
    $("download-stripped").href = urls.dataUrl + "&stripMetadata=true";
    $("download-stripped").setAttribute("download", content.filename);
    var owner = content.userId === state.user;
    $("sharing-section").hidden = !owner;
    $("delete-section").hidden = !owner;
    renderVersions(id, versions);
  }

  function renderVersions(id, versions) {
    var list = $("versions");
    clear(list);
    versions.slice().reverse().forEach(function (version) {
      var item = el("li", { "data-version": version.version });
      var img = el("img", { alt: "version " + version.version, loading: "lazy" });
      img.src = thumbUrl(id, 128, version.version);
      item.appendChild(img);
      var text = "v" + version.version + " · " + new Date(version.createdAt).toLocaleString() +
        " · " + version.changes.join(", ") + " · by " + version.userId;
      item.appendChild(el("span", null, text));
      var link = el("a", { href: state.urls.get(id).dataUrl + "&version=" + version.version,
                           download: version.filename }, "download");
      item.appendChild(link);
      list.appendChild(item);
    });
  }

  function loadGeneration(content) {
    var box = $("generation");
    clear(box);
    var record = content.generation;
    var ready = record !== undefined
      ? Promise.resolve(record)
      : api("GET", "/content/" + encodeURIComponent(content.contentId) + "/generation", withUser())
        .then(function (answer) { return answer ? answer.record : null; },
              function () { return null; });
    return ready.then(function (found) {
      if (state.detailId !== content.contentId) { return; }
      clear(box);
      if (!found || typeof found !== "object") {
        box.appendChild(el("dd", { className: "none" }, "No generation record in this file."));
        return;
      }
      var names = Object.keys(found);
      names.sort(function (a, b) {
        var ia = GENERATION_ORDER.indexOf(a), ib = GENERATION_ORDER.indexOf(b);
        if (ia < 0) { ia = 1000; }
        if (ib < 0) { ib = 1000; }
        return ia - ib || (a < b ? -1 : a > b ? 1 : 0);
      });
      names.forEach(function (name) {
        var value = found[name];
        if (value === null || value === undefined || value === "" ||
            (Array.isArray(value) && !value.length)) { return; }
        var text = typeof value === "object" ? JSON.stringify(value) : String(value);
        if (text.length > 4000) { text = text.slice(0, 4000) + "…"; }
        box.appendChild(el("dt", null, label(name)));
        box.appendChild(el("dd", { "data-field": name }, text));
        var copy = el("button", { type: "button", className: "copy", "aria-label": "Copy " + name }, "copy");
        copy.addEventListener("click", function () { copyText(text); });
        box.appendChild(copy);
      });
    });
  }

  // "negativePrompt" and "negative_prompt" both read "negative prompt".
  function label(name) {
    return name.replace(/_/g, " ").replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  }

  function copyText(text) {
    var done = function () { showMessage("Copied.", "info"); };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  }

  function fallbackCopy(text) {
    var area = el("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (ignored) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  function loadShares(content) {
    var list = $("shares");
    clear(list);
    if (content.userId !== state.user) { return Promise.resolve(); }
    return api("GET", "/collaboration/list", withUser()).then(function (answer) {
      if (state.detailId !== content.contentId) { return; }
      clear(list);
      answer.items.filter(function (c) { return c.contentId === content.contentId; })
        .forEach(function (collab) {
          var item = el("li", { "data-collaboration-id": collab.collaborationId });
          var what = collab.collaboratorId + " · " + (collab.permissions === "write" ? "can edit" : "can view") +
            (collab.stripMetadata ? " · without prompt" : "");
          item.appendChild(el("span", null, what));
          var revoke = el("button", { type: "button", className: "revoke" }, "Revoke");
          revoke.addEventListener("click", function () {
            api("DELETE", "/collaboration/" + encodeURIComponent(collab.collaborationId), withUser())
              .then(function () { showMessage("Sharing ended.", "info"); return loadShares(content); })
              .catch(showError);
          });
          item.appendChild(revoke);
          list.appendChild(item);
        });
      if (!list.children.length) { list.appendChild(el("li", null, "Not shared.")); }
    }).catch(showError);
  }

  function closeDetail() {
    if ($("detail").hidden) { return; }
    var id = state.detailId;
    state.detailId = null;
    $("detail").hidden = true;
    clear($("detail-media")); // stops a playing video
    var node = id && tileOf(id);
    if (node) { node.focus(); }
  }

  function stepDetail(delta) {
    var at = state.items.findIndex(function (item) { return item.contentId === state.detailId; });
    var next = state.items[at + delta];
    if (next) { openDetail(next.contentId); }
  }

  function saveMetadata(event) {
    event.preventDefault();
    var id = state.detailId;
    var tags = $("meta-tags").value.split(",").map(function (t) { return t.trim(); })
      .filter(Boolean);
    api("PUT", "/content/" + encodeURIComponent(id) + "/metadata", null, {
      userId: state.user, description: $("meta-description").value, tags: tags
    }).then(function (content) {
      state.byId.set(id, content);
      var at = state.items.findIndex(function (item) { return item.contentId === id; });
      if (at >= 0) { state.items[at] = content; }
      showMessage("Saved.", "info");
      return api("GET", "/content/" + encodeURIComponent(id) + "/versions", withUser())
        .then(function (answer) { renderVersions(id, answer.items); });
    }).catch(showError);
  }

  function share(event) {
    event.preventDefault();
    var id = state.detailId;
    var body = {
      userId: state.user, contentId: id,
      collaboratorId: $("share-user").value.trim(),
      permissions: $("share-permissions").value
    };
    if ($("share-strip").checked) { body.stripMetadata = true; }
    api("POST", "/collaboration/create", null, body).then(function () {
      $("share-user").value = "";
      showMessage("Shared with " + body.collaboratorId + ".", "info");
      return loadShares(state.byId.get(id));
    }).catch(showError);
  }

  function deleteContent() {
    var id = state.detailId;
    api("DELETE", "/content/" + encodeURIComponent(id), withUser()).then(function () {
      closeDetail();
      var node = tileOf(id);
      if (node) { node.parentNode.removeChild(node); }
      state.items = state.items.filter(function (item) { return item.contentId !== id; });
      state.byId.delete(id);
      state.total = Math.max(0, state.total - 1);
      state.offset = Math.max(0, state.offset - 1);
      renderSummary();
      showMessage("Deleted.", "info");
    }).catch(showError);
  }

  // -- uploads ------------------------------------------------------------------------

  function uploadFiles(files) {
    Array.prototype.forEach.call(files, function (file) { uploadOne(file); });
  }

  // XMLHttpRequest, not fetch: only it reports upload progress. The browser streams the
  // file from disk; the userId field comes before the file part, as the API asks.
  function uploadOne(file) {
    var row = el("div", { className: "upload-row" });
    row.appendChild(el("span", { className: "name" }, file.name));
    var bar = el("progress", { max: "100", value: "0" });
    row.appendChild(bar);
    var stateText = el("span", { className: "state" }, "0%");
    row.appendChild(stateText);
    $("uploads").appendChild(row);
    var form = new FormData();
    form.append("userId", state.user);
    form.append("file", file, file.name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/upload");
    xhr.setRequestHeader("Authorization", "Bearer " + state.key);
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) {
        var percent = Math.round(100 * event.loaded / event.total);
        bar.value = percent;
        stateText.textContent = percent + "%";
      }
    });
    xhr.addEventListener("load", function () {
      var data = null;
      try { data = JSON.parse(xhr.responseText); } catch (ignored) { data = null; }
      if (xhr.status >= 200 && xhr.status < 300 && data) {
        bar.value = 100;
        stateText.textContent = "done";
        addUploaded(data);
        setTimeout(function () { if (row.parentNode) { row.parentNode.removeChild(row); } }, 4000);
      } else {
        row.className = "upload-row failed";
        stateText.textContent = data && data.error ? data.error.message : "failed (" + xhr.status + ")";
      }
    });
    xhr.addEventListener("error", function () {
      row.className = "upload-row failed";
      stateText.textContent = "cannot reach the server";
    });
    xhr.send(form);
  }

  function addUploaded(content) {
    if (state.byId.has(content.contentId)) { return; }
    signUrls([content.contentId]).then(function () {
      state.items.unshift(content);
      state.byId.set(content.contentId, content);
      state.total += 1;
      state.offset += 1;
      var grid = $("grid");
      grid.insertBefore(tile(content), grid.firstChild);
      renderSummary();
      loadFacets();
    }).catch(showError);
  }

  function setUpDrop() {
    var overlay = $("drop-overlay");
    var depth = 0;
    var hasFiles = function (event) {
      return event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0;
    };
    document.addEventListener("dragenter", function (event) {
      if (!hasFiles(event) || !state.user) { return; }
      depth += 1;
      overlay.hidden = false;
    });
    document.addEventListener("dragleave", function () {
      depth = Math.max(0, depth - 1);
      if (!depth) { overlay.hidden = true; }
    });
    document.addEventListener("dragover", function (event) {
      if (hasFiles(event)) { event.preventDefault(); }
    });
    document.addEventListener("drop", function (event) {
      if (!hasFiles(event)) { return; }
      event.preventDefault();
      depth = 0;
      overlay.hidden = true;
      if (state.user) { uploadFiles(event.dataTransfer.files); }
    });
  }

  // -- the account page ---------------------------------------------------------------

  function facts(box, rows) {
    clear(box);
    rows.forEach(function (row) {
      box.appendChild(el("dt", null, row[0]));
      box.appendChild(el("dd", null, row[1]));
    });
  }

  function openAccount() {
    $("account").hidden = false;
    $("account-close").focus();
    Promise.all([
      api("GET", "/storage/usage", withUser()),
      api("GET", "/api/usage", withUser()),
      api("GET", "/analytics", withUser())
    ]).then(function (answers) {
      var storage = answers[0], usage = answers[1], analytics = answers[2];
      facts($("account-storage"), [
        ["Contents", storage.contentCount],
        ["Versions", storage.versionCount],
        ["Current bytes", humanSize(storage.bytes)],
        ["All versions", humanSize(storage.historyBytes)],
        ["Quota", storage.quotaBytes === null ? "none" : humanSize(storage.quotaBytes)]
      ]);
      var ops = Object.keys(usage.byOperation).sort(function (a, b) {
        return usage.byOperation[b].calls - usage.byOperation[a].calls;
      }).slice(0, 8).map(function (name) { return [name, usage.byOperation[name].calls + " calls"]; });
      facts($("account-usage"), [
        ["Calls", usage.totalCalls], ["Errors", usage.errors],
        ["Bytes in", humanSize(usage.bytesIn)], ["Bytes out", humanSize(usage.bytesOut)]
      ].concat(ops));
      facts($("account-analytics"), [
        ["Views", analytics.views], ["Downloads", analytics.downloads],
        ["Bytes served", humanSize(analytics.bytesServed)], ["Unique viewers", analytics.uniqueViewers]
      ].concat((analytics.topContent || []).slice(0, 5).map(function (top) {
        var known = state.byId.get(top.contentId);
        return [known ? known.filename : top.contentId, top.views + " views, " + top.downloads + " downloads"];
      })));
    }).catch(showError);
  }

  function closeAccount() { $("account").hidden = true; }

  // -- keyboard -----------------------------------------------------------------------

  function columns() {
    var tiles = $("grid").children;
    if (tiles.length < 2) { return 1; }
    var top = tiles[0].offsetTop, count = 0;
    for (var i = 0; i < tiles.length && tiles[i].offsetTop === top; i += 1) { count += 1; }
    return Math.max(1, count);
  }

  function onKey(event) {
    if (event.key === "Escape") {
      if (!$("detail").hidden) { closeDetail(); event.preventDefault(); return; }
      if (!$("account").hidden) { closeAccount(); event.preventDefault(); return; }
      if (document.activeElement === $("search") && $("search").value) {
        $("search").value = "";
        onSearchInput();
      }
      return;
    }
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    if (!$("detail").hidden) {
      if (typing) { return; }
      if (event.key === "ArrowRight") { stepDetail(1); event.preventDefault(); }
      if (event.key === "ArrowLeft") { stepDetail(-1); event.preventDefault(); }
      return;
    }
    var current = document.activeElement;
    if (!current || !current.classList || !current.classList.contains("tile")) { return; }
    var tiles = Array.prototype.slice.call($("grid").children);
    var at = tiles.indexOf(current);
    var step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() }[event.key];
    if (step) {
      var target = tiles[Math.min(tiles.length - 1, Math.max(0, at + step))];
      if (target) { target.focus(); }
      event.preventDefault();
    } else if (event.key === "Enter") {
      openDetail(current.getAttribute("data-content-id"));
      event.preventDefault();
    }
  }

  // -- search -------------------------------------------------------------------------

  var searchTimer = null;

  function onSearchInput() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      var value = $("search").value.trim();
      if (value === state.query) { return; }
      state.query = value;
      reload();
    }, DEBOUNCE_MS);
  }

  // -- helpers ------------------------------------------------------------------------

  function humanSize(bytes) {
    if (typeof bytes !== "number") { return ""; }
    var units = ["B", "KB", "MB", "GB", "TB"];
    var value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit ? value.toFixed(1) : String(value)) + " " + units[unit];
  }

  // -- start --------------------------------------------------------------------------

  function start() {
    $("signin-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var key = $("apiKey").value.trim();
      if (!key) { return; }
      $("signin-button").disabled = true;
      signIn(key).catch(showError).then(function () { $("signin-button").disabled = false; });
    });
    $("signout-button").addEventListener("click", function () { signOut(); });
    $("message-close").addEventListener("click", function () { $("message").hidden = true; });
    $("search").addEventListener("input", onSearchInput);
    $("favorites-only").addEventListener("change", function () {
      state.favoritesOnly = $("favorites-only").checked;
      reload();
    });
    $("more").addEventListener("click", function () { loadMore(); });
    $("file-input").addEventListener("change", function () {
      uploadFiles($("file-input").files);
      $("file-input").value = "";
    });
    $("detail-close").addEventListener("click", closeDetail);
    $("detail-prev").addEventListener("click", function () { stepDetail(-1); });
    $("detail-next").addEventListener("click", function () { stepDetail(1); });
    $("detail").addEventListener("click", function (event) {
      if (event.target === $("detail")) { closeDetail(); }
    });
    $("meta-form").addEventListener("submit", saveMetadata);
    $("share-form").addEventListener("submit", share);
    $("delete-button").addEventListener("click", function () {
      $("delete-confirm").hidden = false;
      $("delete-no").focus();
    });
    $("delete-no").addEventListener("click", function () { $("delete-confirm").hidden = true; });
    $("delete-yes").addEventListener("click", deleteContent);
    $("account-button").addEventListener("click", openAccount);
    $("account-close").addEventListener("click", closeAccount);
    document.addEventListener("keydown", onKey);
    setUpDrop();
    if ("IntersectionObserver" in window) {
      new IntersectionObserver(function (entries) {
        if (entries[0].isIntersecting && state.user && state.offset < state.total && !state.loading) {
          loadMore();
        }
      }, { rootMargin: "600px" }).observe($("sentinel"));
    }
    window.addEventListener("error", function (event) {
      showMessage("Something went wrong in the page: " + event.message, "error");
    });
    window.addEventListener("unhandledrejection", function (event) { showError(event.reason); });

    var saved = sessionStorage.getItem(KEY_STORAGE);
    if (saved) {
      signIn(saved).catch(function (error) { signOut(error.message); });
    } else {
      $("signin").hidden = false;
      $("apiKey").focus();
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
