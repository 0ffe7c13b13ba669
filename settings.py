"""Every knob of the app, read from the environment in one place.

DATA_DIR        where everything written at run time goes (label DB, runs, caches, exports); default ./data
MODEL_PATH      the model the Classify tab serves at start; default assets/model/default.npz
ADMIN_PASSWORD  when set, expensive or destructive actions need it (with sign-in on, it opens them all too)
HF_SIGN_IN=1    "Sign in with Hugging Face"; on by itself on a Space with hf_oauth: true (it sets OAUTH_CLIENT_ID).
                Then label decisions are recorded under the signed-in user's name and need a signed-in reviewer.
                Off a Space, or without OAUTH_CLIENT_SECRET (a Space with hf_oauth sets it), the app refuses to start:
                Gradio's sign-in there is a local mock anyone could forge (see Settings.sign_in_refusal)
SIGN_IN_LOCAL_TESTING=1  start all the same, to try sign-in on one's own machine (Gradio's mock signs everyone in
                as this machine's Hugging Face user); every page then says in a banner that it is not safe in public
REVIEWERS       with sign-in: the Hugging Face users who may decide labels; empty: any signed-in user
ADMIN_USERS     with sign-in: the Hugging Face users or organisations whose members may import, auto-label, export,
                evaluate, train and serve; empty: the password alone opens those (or nothing, as today, without one)
LLM_PROVIDER    who labels photos for auto-label: glm (GLM-4V, Zhipu's error codes; the default while LLM_BASE_URL is
                Zhipu's) or openai (any OpenAI-compatible vision endpoint: Qwen-VL, a local Ollama, vLLM...)
LLM_BASE_URL, LLM_MODEL  its endpoint and model; default Zhipu's and glm-4.6v-flash
LLM_API_KEY     its key (never shown or logged); for GLM, ZHIPUAI_API_KEY works too. GLM_BASE_URL, GLM_MODEL,
                GLM_DATA_PREFIX and GLM_COST_PER_IMAGE, the older names, are still read
LLM_DATA_PREFIX=0 sends raw base64 without "data:image/jpeg;base64," (as Zhipu's own example)
LLM_COST_PER_IMAGE what one request costs, for the estimate shown before auto-labeling; default 0.01
DATA_ROOTS      folders (separated by ":") whose sub-folders can be picked as data sets in the app; default
                DATA_DIR/datasets
LOW_CONFIDENCE  top-1 probability under which the app warns "not one of the 10 animals?"; default 0.5
MAX_UPLOAD_MB   size limit of a photo to classify; default 20
MAX_DATASET_MB  size limit of an uploaded data set, unpacked (also Gradio's limit for any one uploaded file);
                default 500
SERVING_ENGINE  litert (default: the model converted once to .tflite) or keras
MODEL_CACHE     where converted .tflite models are kept; default DATA_DIR/tflite
GRAD_CAM_WARM=0 for a model whose head is not linear, Grad-CAM (TensorFlow and the model in Keras) loaded when first
                asked for, not in the background once the app has answered once or has run WARM_AFTER seconds
                (app.py): less memory, a slow first heatmap (a linear head's heatmap comes from the served model)
PERSIST_DIR     where what must outlive the host is kept (a Storage Bucket mounted as a folder): every label write
                journaled as a new small file, uploaded data sets copied once; a start without a label store
                rebuilds it from there (labeling/journal.py)
HF_DATASET_REPO, HF_TOKEN  optional: the reviewed labels and their history pushed to this dataset repository every
                HUB_PUSH_MINUTES (default 10) and on demand (labeling/hub.py)
"""

import hmac
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from classifier import ASSETS
from classifier.modelfile import DEFAULT_MODEL
from classifier.predictor import LOW_CONFIDENCE
from i18n import Message
from uploads import PENDING

DEMO_DIR = ASSETS / "demo"


@dataclass(frozen=True)
class Layout:
    """Where the app keeps what it writes at run time, named once: every module asks here (``settings.layout``).

    Under ``DATA_DIR`` (:attr:`data_dir`)::

        labels.db      the label store (labeling.store)
        datasets/      uploaded data sets and the demo set; a data root unless DATA_ROOTS says otherwise
        runs/          training runs, one folder each (its files: training.layout)
        evaluations/   the Evaluate tab's evaluations, one folder each (its files: evaluation.run)
        hub/           the snapshot pushed to HF_DATASET_REPO (labeling.hub)
        tflite/        converted models, unless MODEL_CACHE says otherwise
        features/      backbone features per model and data set, and what is made of them: copies, leaks, the map
                       (``features/<model hash>/<set>.*``: evaluation.curation)
        .restoring/    runs and evaluations being copied back from PERSIST_DIR

    Under ``PERSIST_DIR`` (:attr:`persist_dir`, when set): the kept folders (:attr:`KEPT`) under the same names,
    beside the label store's journal (labeling.journal).
    """

    data_dir: Path
    persist_dir: Path | None = None

    KEPT = ("runs", "evaluations")  # besides the label store's journal: what PERSIST_DIR keeps of DATA_DIR

    @property
    def labels_db(self) -> Path:
        return self.data_dir / "labels.db"

    @property
    def datasets(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def runs(self) -> Path:
        return self.data_dir / self.KEPT[0]

    @property
    def evaluations(self) -> Path:
        return self.data_dir / self.KEPT[1]

    @property
    def hub(self) -> Path:
        return self.data_dir / "hub"

    @property
    def tflite(self) -> Path:
        return self.data_dir / "tflite"

    @property
    def features(self) -> Path:
        return self.data_dir / "features"

    def kept(self, kind: str) -> Path | None:
        """Where ``PERSIST_DIR`` keeps the ``kind`` of folder (one of :attr:`KEPT`); None without ``PERSIST_DIR``."""
        if kind not in self.KEPT:
            raise ValueError(f"{kind!r} is not kept: one of {', '.join(self.KEPT)}")
        return self.persist_dir / kind if self.persist_dir else None

    def keep(self, folder: Path, kind: str) -> None:
        """Copy a finished run or evaluation (``kind``: one of :attr:`KEPT`) to ``PERSIST_DIR/<kind>/`` once, as
        write-once files (:func:`classifier.files.keep_copy`); nothing without ``PERSIST_DIR``. A failure is one
        log line: the folder stays on the local disk."""
        if (into := self.kept(kind)) is None:
            return
        from classifier.files import keep_copy

        try:
            keep_copy(folder, into / Path(folder).name)
        except OSError as e:
            print(f"PERSIST_DIR: {kind} {Path(folder).name} not kept ({type(e).__name__}); it stays on the local "
                  "disk only", file=sys.stderr, flush=True)

    def restore_kept(self) -> dict:
        """Copy back the runs and evaluations kept in ``PERSIST_DIR`` that ``DATA_DIR`` lacks (each listed once it is
        whole); ``{kind: [names]}``. The label store is restored by the review, before it serves."""
        from classifier.files import restore_copies

        if not self.persist_dir:
            return {}
        staging = self.data_dir / ".restoring"
        return {kind: restore_copies(self.kept(kind), self.data_dir / kind, staging / kind) for kind in self.KEPT}


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    model_path: Path = DEFAULT_MODEL
    admin_password: str = field(default="", repr=False)
    llm_provider: str = "glm"  # glm or openai (labeling.llm.labeler_from)
    llm_api_key: str = field(default="", repr=False)
    llm_base_url: str = "https://open.bigmodel.cn/api/paas/v4/"
    llm_model: str = "glm-4.6v-flash"
    llm_data_prefix: bool = True
    llm_cost_per_image: float = 0.01  # what one auto-label request costs, in the endpoint's currency (estimates)
    low_confidence: float = LOW_CONFIDENCE  # "none of the 10" under it, for a model with no calibrated cut
    max_upload_mb: int = 20
    max_dataset_mb: int = 500
    min_free_mb: int = 1024  # below this much free disk, uploads are refused (the label store keeps room to write)
    persist_dir: Path | None = None  # where what must outlive the host goes (labeling.journal): a mounted bucket
    hf_dataset_repo: str = ""  # owner/name: the reviewed labels pushed there (labeling.hub), with hf_token
    hf_token: str = field(default="", repr=False)
    hub_push_minutes: float = 10
    data_roots: tuple = ()
    sign_in: bool = False  # "Sign in with Hugging Face" (a Space with hf_oauth: true sets OAUTH_CLIENT_ID)
    # Gradio's real sign-in: on a Space (SYSTEM=spaces, SPACE_ID) with OAUTH_CLIENT_SECRET, which signs the cookie
    sign_in_on_space: bool = False
    sign_in_local_testing: bool = False  # SIGN_IN_LOCAL_TESTING=1: start with a sign-in anyone can forge, said so
    reviewers: tuple = ()  # Hugging Face user names who may decide labels once signed in; empty: any signed-in user
    admin_users: tuple = ()  # Hugging Face users or organisations whose members may do admin actions once signed in
    serving_engine: str = "litert"
    warm_grad_cam: bool = True  # GRAD_CAM_WARM: Grad-CAM loaded in the background after the start (ModelSlot.warm)
    model_cache: Path = None

    @property
    def persistent(self) -> bool:
        """False on a Hugging Face Space without ``PERSIST_DIR``: its disk, ``DATA_DIR`` included, is wiped at every
        restart (Spaces have no persistent disk any more; a Storage Bucket mounted as a folder is PERSIST_DIR)."""
        return bool(self.persist_dir) or not os.environ.get("SPACE_ID")

    def journal(self):
        """The journal in ``PERSIST_DIR`` (:class:`labeling.journal.Journal`), or None when it is not set."""
        from labeling.journal import Journal

        return Journal(self.persist_dir) if self.persist_dir else None

    @property
    def layout(self) -> Layout:
        """Where the app keeps what it writes (:class:`Layout`): ``DATA_DIR``'s folders and ``PERSIST_DIR``'s."""
        return Layout(self.data_dir, self.persist_dir)

    @property
    def sign_in_test(self) -> bool:
        """Sign-in is on but is Gradio's local mock, not Hugging Face's: off a Space Gradio signs everyone in as this
        machine's own Hugging Face user (``/login/callback``), and without ``OAUTH_CLIENT_SECRET`` it signs the
        session cookie with a public constant, so a forged cookie is anyone (gradio/oauth.py, ``attach_oauth``)."""
        return self.sign_in and not self.sign_in_on_space

    def sign_in_refusal(self) -> Message | None:
        """Why the app must not start (a :class:`i18n.Message`): a sign-in anyone could forge (:attr:`sign_in_test`)
        without ``SIGN_IN_LOCAL_TESTING=1`` saying that this is wanted; else None."""
        return Message("sign_in_unsafe") if self.sign_in_test and not self.sign_in_local_testing else None

    @property
    def llm_ready(self) -> bool:
        """Whether auto-label can run: a key is set, or the provider needs none (a local OpenAI-compatible server)."""
        return bool(self.llm_api_key) or self.llm_provider != "glm"

    def is_admin(self, profile) -> bool:
        """A signed-in Hugging Face profile (``gr.OAuthProfile``, a dict) named in ``ADMIN_USERS``, itself or through
        one of the organisations its sign-in lists (``orgs``)."""
        if not profile or not self.admin_users:
            return False
        names = {profile.get("preferred_username")} | {o.get("preferred_username") or o.get("name")
                                                       for o in profile.get("orgs") or [] if isinstance(o, dict)}
        return bool(names & set(self.admin_users))

    def admin_ok(self, password: str | None) -> bool:
        """True when no ADMIN_PASSWORD is set, or ``password`` matches it (compared in constant time)."""
        return not self.admin_password or hmac.compare_digest(password or "", self.admin_password)

    def datasets(self) -> list[str]:
        """Every sub-folder of the data roots by name, ``root name/folder name``, for a dropdown: no server path is
        shown. Two roots of the same name stay apart: the second one's sets are ``name~2/folder``."""
        return list(self._datasets())

    def dataset_path(self, choice: str) -> Path:
        """The folder of a data set named as :meth:`datasets` names it, or a path under the data roots (API
        callers, older clients); raises :class:`PathNotAllowed` for anything else."""
        return self._datasets().get(choice) or confine(choice, self.data_roots)

    def _datasets(self):
        out, labels = {}, set()
        for i, root in enumerate(map(Path, self.data_roots), 1):
            label = root.name if root.name not in labels else f"{root.name}~{i}"
            labels.add(label)
            if root.is_dir():
                # .incoming-*: an upload unpacking; one holding PENDING: an upload whose import has not finished
                out.update({f"{label}/{d.name}": d.resolve() for d in sorted(root.iterdir())
                            if d.is_dir() and not d.name.startswith(".") and not (d / PENDING).exists()})
        return out

    def install_demo(self) -> None:
        """At start: remove what killed uploads left, and copy the shipped demo set (assets/demo) to
        ``DATA_DIR/datasets/demo`` on first start, when the data roots include that folder and no ``demo`` is there
        yet."""
        from uploads import clean_staging

        clean_staging(self.layout.datasets)  # what a killed upload left, before anything lists the data sets
        target = self.layout.datasets / "demo"
        if target.exists() or target.parent.resolve() not in [Path(r).resolve() for r in self.data_roots]:
            return
        import shutil

        staging = target.with_name(".incoming-demo")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(DEMO_DIR, staging, ignore=shutil.ignore_patterns("sources.csv"))  # not the true classes
        staging.rename(target)

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        """Build settings from ``env`` (default ``os.environ``); unset variables keep their defaults."""
        env = os.environ if env is None else env
        d = cls()
        data_dir = Path(env.get("DATA_DIR") or d.data_dir)
        roots = [Path(r) for r in (env.get("DATA_ROOTS") or "").split(os.pathsep) if r]
        return cls(
            data_dir=data_dir,
            data_roots=tuple(roots or [Layout(data_dir).datasets]),
            model_path=Path(env.get("MODEL_PATH") or d.model_path),
            admin_password=env.get("ADMIN_PASSWORD", ""),
            sign_in=bool(env.get("OAUTH_CLIENT_ID")) or _yes(env.get("HF_SIGN_IN")),
            # as Gradio decides (gradio.utils.get_space, gradio.oauth): real routes on a Space, a secret to sign with
            sign_in_on_space=env.get("SYSTEM") == "spaces" and bool(env.get("SPACE_ID"))
            and bool((env.get("OAUTH_CLIENT_SECRET") or "").strip()),
            sign_in_local_testing=env.get("SIGN_IN_LOCAL_TESTING", "") == "1",
            reviewers=_names(env.get("REVIEWERS")), admin_users=_names(env.get("ADMIN_USERS")),
            **_llm(env, d),
            low_confidence=float(env.get("LOW_CONFIDENCE") or d.low_confidence),
            max_upload_mb=int(env.get("MAX_UPLOAD_MB") or d.max_upload_mb),
            max_dataset_mb=int(env.get("MAX_DATASET_MB") or d.max_dataset_mb),
            min_free_mb=int(env.get("MIN_FREE_MB") or d.min_free_mb),
            persist_dir=Path(env["PERSIST_DIR"]) if env.get("PERSIST_DIR") else None,
            hf_dataset_repo=env.get("HF_DATASET_REPO", ""), hf_token=env.get("HF_TOKEN", ""),
            hub_push_minutes=float(env.get("HUB_PUSH_MINUTES") or d.hub_push_minutes),
            serving_engine=env.get("SERVING_ENGINE") or d.serving_engine,
            warm_grad_cam=env.get("GRAD_CAM_WARM", "1") not in ("0", "false", "no"),
            model_cache=Path(env.get("MODEL_CACHE") or Layout(data_dir).tflite),
        )


def _names(value: str | None) -> tuple:
    """User names from a setting: separated by commas or spaces."""
    return tuple(n for n in (value or "").replace(",", " ").split() if n)


def _llm(env, d) -> dict:
    """The LLM settings from their role's names (LLM_*), else the older GLM_* / ZHIPUAI_API_KEY ones."""
    def read(name, old):
        return env.get(f"LLM_{name}") or env.get(old)

    base_url = read("BASE_URL", "GLM_BASE_URL") or d.llm_base_url
    provider = env.get("LLM_PROVIDER") or ("glm" if "bigmodel.cn" in base_url else "openai")
    return {"llm_provider": provider, "llm_api_key": read("API_KEY", "ZHIPUAI_API_KEY") or "",
            "llm_base_url": base_url, "llm_model": read("MODEL", "GLM_MODEL") or d.llm_model,
            "llm_data_prefix": (read("DATA_PREFIX", "GLM_DATA_PREFIX") or "1") not in ("0", "false", "no"),
            "llm_cost_per_image": float(read("COST_PER_IMAGE", "GLM_COST_PER_IMAGE") or d.llm_cost_per_image)}


class PathNotAllowed(Message):
    """A path outside the configured roots (``..`` or a symbolic link pointing out included)."""


def confine(path: str | Path, roots) -> Path:
    """Resolve ``path`` (relative paths against the first root) and return it if it lies under one of ``roots``.

    Symbolic links are resolved before the check, so a link inside a root that points elsewhere is refused.
    """
    roots = [Path(r).resolve() for r in roots]
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else roots[0] / candidate).resolve()
    if not any(resolved == r or r in resolved.parents for r in roots):
        raise PathNotAllowed("not_a_dataset", name=Path(path).name or str(path))
    return resolved


def _yes(value) -> bool:
    """A switch set on: ``1``, ``true``, ``yes`` or ``on`` (a ``true`` must not quietly leave sign-in off)."""
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")
