"""GLM-4V (Zhipu) as one provider of :mod:`labeling.llm`: an OpenAI-compatible endpoint with business error codes.

Facts from Zhipu's documentation that shape this module: images go as base64 ``image_url`` (under 5 MB, jpg/png; the
official example sends raw base64 without a ``data:`` prefix, so the prefix is a setting); errors carry a business
code: 1301 content filter (record, no retry), 1302/1305 rate limit (HTTP 429: back off and retry), 1113 no balance
and 1000-1004 authentication (stop the batch), 1210/1211/1214 bad request (stop). A 200 reply may end with
``finish_reason="sensitive"``.
"""

from typing import TYPE_CHECKING

from .llm import OpenAICompatibleLabeler

if TYPE_CHECKING:
    import openai

RETRY_CODES = {"1302", "1305"}
STOP_CODES = {"1000", "1001", "1002", "1003", "1004", "1113", "1210", "1211", "1214"}


class GLMLabeler(OpenAICompatibleLabeler):
    """GLM-4V's labeller: Zhipu's error codes decide what is retried, recorded or stops the batch."""

    provider = "glm"
    key_required = True

    def triage(self, error: "openai.APIStatusError") -> tuple[str, str]:
        code, _ = super().triage(error)
        if code == "1301":
            return code, "filtered"
        if code in STOP_CODES or error.status_code in (401, 403):
            return code, "stop"
        if code in RETRY_CODES or error.status_code == 429 or error.status_code >= 500:
            return code, "retry"
        return code, "stop"

    def advice(self, code: str, status: int) -> str:
        if code == "1113":
            return "The account has no balance left: top it up, or use the free glm-4.6v-flash model."
        if code in {"1000", "1001", "1002", "1003", "1004"} or status in (401, 403):
            return "Check LLM_API_KEY (or ZHIPUAI_API_KEY)."
        return "Check the LLM_MODEL and LLM_BASE_URL settings."
