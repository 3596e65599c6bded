"""Self-curation (Humpback: Li et al., ICLR 2024, "Self-Alignment with Instruction Backtranslation"): a model
rates each (instruction, response) pair on the paper's 5-point scale; keep the pairs rated 5 (docs/methods.md
§7).

The prompt is the paper's Table 1, word for word, laid out as distilabel's ``InstructionBacktranslation``
task lays it out (``src/distilabel/steps/tasks/templates/instruction-backtranslation.jinja2``: one line per
scale point, then the instruction and the answer on their own lines), asked as one user message. A reply is
read as the paper asks for it: the number in ``Score: <rating>`` on its last such line, 1-5; anything else
is null with the raw reply kept. An endpoint (temperature 0) writes its reasoning and then the score; a
local model is read through its probabilities of "1".."5" where its reply writes ``Score:`` (the
expectation, as tunesift's local AlpaGasus judge does): one forward pass instead of a generated rationale.
The paper keeps the samples scored 5 (its A5 set, score >= 4.5), or >= 4 for the larger A4 set.
"""

from __future__ import annotations

import hashlib
import re

from tunesift.data.sample import Sample
from tunesift.scorers.judge import JudgeScorer, Rubric, UnparseableReply

SELF_CURATION_VERSION = 2  # 2: the rubric's apostrophes are U+2019, as the paper's Table 1 and distilabel
SCALE = (1, 2, 3, 4, 5)
PROMPT = (
    "Below is an instruction from an user and a candidate answer. Evaluate whether or not the answer is a good "
    "example of how AI Assistant should respond to the user’s instruction. Please assign a score using the "
    "following 5-point scale:\n"
    "1: It means the answer is incomplete, vague, off-topic, controversial, or not exactly what the user asked "
    "for. For example, some content seems missing, numbered list does not start from the beginning, the opening "
    "sentence repeats user’s question. Or the response is from another person’s perspective with their personal "
    "experience (e.g. taken from blog posts), or looks like an answer from a forum. Or it contains promotional "
    "text, navigation text, or other irrelevant information.\n"
    "2: It means the answer addresses most of the asks from the user. It does not directly address the user’s "
    "question. For example, it only provides a high-level methodology instead of the exact solution to user’s "
    "question.\n"
    "3: It means the answer is helpful but not written by an AI Assistant. It addresses all the basic asks from "
    "the user. It is complete and self contained with the drawback that the response is not written from an AI "
    "assistant’s perspective, but from other people’s perspective. The content looks like an excerpt from a blog "
    "post, web page, or web search results. For example, it contains personal experience or opinion, mentions "
    "comments section, or share on social media, etc.\n"
    "4: It means the answer is written from an AI assistant’s perspective with a clear focus of addressing the "
    "instruction. It provide a complete, clear, and comprehensive response to user’s question or instruction "
    "without missing or irrelevant information. It is well organized, self-contained, and written in a helpful "
    "tone. It has minor room for improvement, e.g. more concise and focused.\n"
    "5: It means it is a perfect answer from an AI Assistant. It has a clear focus on being a helpful AI "
    "Assistant, where the response looks like intentionally written to address the user’s question or "
    "instruction without any irrelevant sentences. The answer provides high quality content, demonstrating "
    "expert knowledge in the area, is very well written, logical, easy-to-follow, engaging and insightful.\n"
    'Please first provide a brief reasoning you used to derive the rating score, and then write "Score: <rating>" '
    "in the last line.\n\n{instruction}\n{output}\n"
)
PROMPT_SHA256 = hashlib.sha256(PROMPT.encode("utf-8")).hexdigest()
_SCORE = re.compile(r"score\s*:\s*\**\s*(\d+(?:\.\d+)?)(\s*(?:/|out\s+of)\s*\d+)?", re.IGNORECASE)


def curation_messages(sample: Sample) -> list[dict[str, str]]:
    """The rating request for one sample (a conversation is rated on its last turn; an Alpaca ``input``
    follows the instruction on its own line)."""
    instruction = f"{sample.instruction}\n{sample.input}" if sample.input else sample.instruction
    return [{"role": "user", "content": PROMPT.format(instruction=instruction, output=sample.output)}]


def parse_curation(reply: str) -> float:
    """The rating of the reply's last ``Score: N`` (1-5; a score on another scale, or none, is unreadable)."""
    matches = list(_SCORE.finditer(reply))
    if not matches:
        raise UnparseableReply(reply, "no_score_line")
    value, scale = matches[-1].group(1), matches[-1].group(2)
    if scale is not None and float(re.sub(r"[^\d.]", "", scale)) != 5.0:
        raise UnparseableReply(reply, f"other_scale: {value}{scale.strip()}")
    if float(value) not in SCALE:
        raise UnparseableReply(reply, f"not_on_the_scale: {value}")
    return float(value)


# A local judge's reply is read where it writes "Score:": the next token " 5", or "5" after "Score: " (where
# the tokenizer splits the space off, as SmolLM2's and Gemma's do), or "5" right after "Score:".
FORMS = (("Score:", " {d}"), ("Score: ", "{d}"), ("Score:", "{d}"))
RUBRIC = Rubric("self_curation", SCALE, curation_messages, parse_curation, FORMS,
                tuple(("\n\n" + prefix, digit) for prefix, digit in FORMS))  # fmt: skip


class SelfCuration(JudgeScorer):
    """Humpback's 5-point quality rating of each sample, by an endpoint or a local model."""

    method = "self-curation"
    summary = "Self-curation (Humpback): a judge rates each pair on the paper's 5-point scale; keep the 5s."
    columns = ("self_curation",)
    subset_columns = ("self_curation", "judge_reply")
    default_rule = "self-curation"
    pass_threshold = 4.5  # the recipe's filter: keep >= 4.5
    options = JudgeScorer.method_options

    name = "self_curation"
    result_fields = ("self_curation", "judge_reply", "probs", "skip_reason", "transient")
    rubric = RUBRIC
    version = SELF_CURATION_VERSION
    prompt_sha256 = PROMPT_SHA256

    def describe(self) -> str:
        return "self-curation judge"
