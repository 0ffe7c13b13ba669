"""Every knob of the app, read from the environment in one place.

DATA_DIR        where everything written at run time goes (label DB, runs, caches, exports); default ./data
MODEL_PATH      the model the Classify tab serves at start; default assets/model/default.npz
ADMIN_PASSWORD  when set, expensive or destructive actions need it
ZHIPUAI_API_KEY GLM key for auto-labeling (never shown or logged); GLM_BASE_URL and GLM_MODEL override the endpoint
LOW_CONFIDENCE  top-1 probability under which the app warns "not one of the 10 animals?"; default 0.5
MAX_UPLOAD_MB   upload size limit; default 20
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from classifier.model import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    model_path: Path = DEFAULT_MODEL
    admin_password: str = field(default="", repr=False)
    glm_api_key: str = field(default="", repr=False)
    glm_base_url: str = "https://open.bigmodel.cn/api/paas/v4/"
    glm_model: str = "glm-4.6v-flash"
    low_confidence: float = 0.5
    max_upload_mb: int = 20

    @classmethod
    def from_env(cls, env=None):
        """Build settings from ``env`` (default ``os.environ``); unset variables keep their defaults."""
        env = os.environ if env is None else env
        d = cls()
        return cls(
            data_dir=Path(env.get("DATA_DIR") or d.data_dir),
            model_path=Path(env.get("MODEL_PATH") or d.model_path),
            admin_password=env.get("ADMIN_PASSWORD", ""),
            glm_api_key=env.get("ZHIPUAI_API_KEY", ""),
            glm_base_url=env.get("GLM_BASE_URL") or d.glm_base_url,
            glm_model=env.get("GLM_MODEL") or d.glm_model,
            low_confidence=float(env.get("LOW_CONFIDENCE") or d.low_confidence),
            max_upload_mb=int(env.get("MAX_UPLOAD_MB") or d.max_upload_mb),
        )
