// The page's language switch (English / 中文): remember the choice for this browser session in the cookie
// "studio_lang", then load the page again. The server reads the cookie to word its own text, and starts the page
// in that language (ui.LanguagePage), so every tab's static text is in it from the first paint.
window.studioLanguage = (lang) => {
  document.cookie = `studio_lang=${lang}; path=/; SameSite=Lax`;
  window.location.reload();
};

// Gradio's status tracker writes two of its words in English whatever the page's language, with no key in its
// catalog to translate them by ("processing |" while an event runs, "queue: 2/5 |" while it waits): on a page in
// another language they are said in its words (assets/i18n.json's gradio_processing and gradio_queue, which app.py
// hands the page as studioGradioWords). Gradio's words that have a key (common.complete...) are translated by the
// catalog itself.
(() => {
  const words = (window.studioGradioWords || {})[navigator.language.slice(0, 2)];
  if (!words || navigator.language.startsWith("en")) return;
  const english = /^(processing \||queue: )/;
  const said = (text) => text.replace(/^processing \|/, `${words.processing} |`).replace(/^queue: /, `${words.queue}: `);
  const fix = (node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      if (english.test(node.nodeValue)) node.nodeValue = said(node.nodeValue);
    } else if (node.nodeType === Node.ELEMENT_NODE && /processing \||queue: /.test(node.textContent)) {
      const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
      while (walker.nextNode()) fix(walker.currentNode);
    }
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "characterData") fix(r.target);
      else r.addedNodes.forEach(fix);
    }
  }).observe(document.documentElement, { subtree: true, childList: true, characterData: true });
})();
