// The page's language switch (English / 中文): remember the choice for this browser session in the cookie
// "studio_lang", then load the page again. The server reads the cookie to word its own text, and starts the page
// in that language (ui.LanguagePage), so every tab's static text is in it from the first paint.
window.studioLanguage = (lang) => {
  document.cookie = `studio_lang=${lang}; path=/; SameSite=Lax`;
  window.location.reload();
};
