"""The UI layer: everything Gradio. One module per tab (``classify``, ``review``, ``evaluate``, ``train``), the agents'
read-only tools app (``tools``), the guard (``guard``), the server's middlewares (``http``), the review's presenter
(``review_view``: the session's answers in the viewer's words) and what the tabs share (``common``). ``app.py``
composes them; the packages below (``classifier``, ``labeling``, ``training``, ``evaluation``) and ``uploads.py``
import no Gradio."""
