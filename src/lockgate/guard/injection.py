"""The `injection` scanner: prompt injection and jailbreak attempts, by rules.

Each rule is a phrasing attackers use, with a weight; a text's score is the noisy-OR
of the weights of the rules it matches (`1 - Π(1 - w)`), so two weak signals (a fake
`System:` line and "developer mode") add up while one weak signal alone stays under
the default threshold. The finding names the strongest category:

- `INSTRUCTION_OVERRIDE`: "ignore all previous instructions", "forget everything above".
- `PROMPT_LEAK`: "print your system prompt", "repeat the words above verbatim".
- `ROLE_CONFUSION`: chat-template tokens (`<|im_start|>system`, `[INST]`, `<<SYS>>`),
  fake `System:` turns, `</system>` tags.
- `JAILBREAK`: DAN and its family, "you are no longer bound by", "never refuse".
- `INDIRECT`: text addressed to the AI inside data ("if you are an AI reading this",
  "send the conversation to https://...", "do not tell the user") — what a tool
  result or a fetched page carries.
- `HIDDEN_UNICODE`: Unicode tag characters, bidirectional overrides, runs of zero-width
  characters (text a human does not see but the model reads).
- `ENCODED_PAYLOAD`: base64 or hex that decodes to an injection, or a request to
  decode something and obey it.

Matching runs on a normalised copy (NFKC, zero-width characters removed, lower case,
whitespace collapsed), so `ig\u200bnore` and full-width letters do not slip through.
Findings span the whole text: an injection is blocked or flagged, not redacted.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from lockgate.guard.types import Finding, ScanContext, Scanner

__all__ = ["InjectionScanner", "injection_score"]


@dataclass(frozen=True, slots=True)
class _Rule:
    category: str
    weight: float
    pattern: re.Pattern[str]
    needs: tuple[str, ...]  # the rule runs only when the text contains one of these

_NOUNS = (r"(?:instructions?|prompts?|rules|directions|directives?|guidelines|commands|constraints|programming|"
          r"guardrails?|restrictions|polic(?:y|ies)|context|training|system prompt|system message|orders)")
_OVERRIDE_VERBS = r"(?:ignore|disregard|forget|bypass|override|discard|neglect|abandon|set aside|throw away|drop)"
_ADJ = (r"(?:all|any|every|previous|prior|above|earlier|preceding|former|original|initial|system|your|safety|"
        r"existing|old|default|developer|built-in|hidden|those|these|the above)")
_AI = r"(?:ai|a\.i\.|assistant|llm|language model|chatbot|agent|bot|model|gpt|claude)"


def _r(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_RULES: tuple[_Rule, ...] = (
    # instruction override
    _Rule("INSTRUCTION_OVERRIDE", 0.92, _r(rf"\b{_OVERRIDE_VERBS}\b(?:\s+\S+){{0,3}}?\s+{_ADJ}\b(?:\s+\S+){{0,3}}?\s+{_NOUNS}\b"), ("ignor", "disregard", "forget", "bypass", "overrid", "discard", "neglect", "abandon", "set aside", "throw away", "drop")),
    _Rule("INSTRUCTION_OVERRIDE", 0.9, _r(rf"\b{_OVERRIDE_VERBS}\s+{_ADJ}\s+{_NOUNS}\b"), ("ignor", "disregard", "forget", "bypass", "overrid", "discard", "neglect", "abandon", "set aside", "throw away", "drop")),
    _Rule("INSTRUCTION_OVERRIDE", 0.88, _r(r"\b(?:do not|don't|stop|no longer|never) (?:follow|obey|adhere to|listen to|comply with)(?:ing)?\s+(?:\S+\s+){0,3}?(?:instructions|rules|guidelines|system prompt|programming|polic(?:y|ies)|developers?)\b"), ("follow", "obey", "adhere", "listen to", "comply")),
    _Rule("INSTRUCTION_OVERRIDE", 0.85, _r(r"\b(?:ignore|disregard|forget)\s+(?:everything|all|anything|whatever)\s+(?:(?:that )?(?:you (?:were|have been) (?:told|given|instructed)|(?:said |written |stated )?(?:above|before|previously|earlier|so far|up to now)))"), ("ignor", "disregard", "forget")),
    _Rule("INSTRUCTION_OVERRIDE", 0.85, _r(r"\b(?:ignore|disregard|forget) (?:the |what(?:'s| is) )?(?:above|previous|preceding)(?:\s+text)?\s*(?:and|,|\.|;|:|$)"), ("ignor", "disregard", "forget")),
    _Rule("INSTRUCTION_OVERRIDE", 0.9, _r(rf"\b{_OVERRIDE_VERBS} (?:the |all |any )?{_NOUNS} (?:you (?:were|have been|'ve been) (?:given|told)|you were trained (?:on|with)|given to you)"), ("ignor", "disregard", "forget", "bypass", "overrid", "discard", "neglect", "abandon", "set aside", "throw away", "drop")),
    _Rule("INSTRUCTION_OVERRIDE", 0.85, _r(r"\b(?:previous|prior|all|your|earlier|old|original|existing) (?:rules|instructions|restrictions|guidelines|filters|guardrails|safety rules) (?:are|have been|were) (?:now |hereby )?(?:disabled|lifted|removed|suspended|void|revoked|off|cancel+ed|deactivated)"), ("disabled", "lifted", "removed", "suspended", "void", "revoked", "off", "cancel", "deactivated")),
    _Rule("INSTRUCTION_OVERRIDE", 0.75, _r(r"\b(?:new|updated|revised|real|actual|true) (?:system )?(?:instructions?|directives?|task|orders)\s*(?::|are|is)"), ("instruction", "directive", "task", "orders")),
    _Rule("INSTRUCTION_OVERRIDE", 0.55, _r(r"\bfrom now on,? (?:you (?:are|will|must|shall|should)|your (?:name|role|job) is|act|respond|answer only)"), ("from now on",)),
    _Rule("INSTRUCTION_OVERRIDE", 0.6, _r(r"\b(?:instead|rather),? (?:you (?:must|should|will) )?(?:just )?(?:respond|reply|answer|say|output|print|write)(?: only)?(?: with)? [\"'“]"), ("instead", "rather")),
    _Rule("INSTRUCTION_OVERRIDE", 0.7, _r(r"\b(?:your|the) (?:previous|prior|original|old) (?:instructions|rules|guidelines|prompt) (?:are|is|were|have been) (?:now |hereby )?(?:void|cancel+ed|revoked|obsolete|no longer (?:valid|apply|relevant)|replaced|overridden)"), ("void", "cancel", "revoked", "obsolete", "no longer", "replaced", "overridden")),
    # prompt leak
    _Rule("PROMPT_LEAK", 0.9, _r(r"\b(?:reveal|print|show|display|output|repeat|tell me|give me|list|leak|dump|share|spell out|write out|echo|recite|paste|what(?:'s| is| are| were))\b(?:\s+\S+){0,4}?\s+(?:(?:your|the) )?(?:system prompt|system message|initial prompt|original prompt|pre-?prompt|hidden (?:prompt|instructions|rules)|secret (?:instructions|prompt|rules)|developer (?:message|instructions|prompt)|(?:confidential|internal) instructions)"), ("system prompt", "system message", "initial prompt", "original prompt", "prompt", "hidden", "secret", "developer", "confidential", "internal")),
    _Rule("PROMPT_LEAK", 0.85, _r(r"\b(?:repeat|print|output|write|copy|recite|echo)\b(?:\s+\S+){0,3}?\s+(?:words|text|everything|instructions|content|all) (?:above|before this|that came before|preceding)"), ("above", "before this", "preceding", "came before")),
    _Rule("PROMPT_LEAK", 0.85, _r(r"\b(?:reveal|print|show|output|repeat|tell me|give me|dump|recite) (?:\S+\s+){0,2}?(?:your|the) (?:instructions|rules|guidelines|configuration|prompt)(?: you were given| verbatim| word for word| exactly| above| in full)"), ("verbatim", "word for word", "exactly", "above", "in full", "you were given")),
    _Rule("PROMPT_LEAK", 0.8, _r(r"\bstarting with (?:the words )?[\"'“]?you are\b"), ("starting with",)),
    _Rule("PROMPT_LEAK", 0.45, _r(r"\bwhat (?:are|were) your (?:instructions|rules|guidelines|directives)\b"), ("what are your", "what were your")),
    _Rule("PROMPT_LEAK", 0.85, _r(r"\bwhat (?:are|were) your (?:original|initial|hidden|secret|exact|system|first|real) (?:instructions|rules|guidelines|directives|prompt)\b"), ("what are your", "what were your")),
    # role confusion
    _Rule("ROLE_CONFUSION", 0.95, _r(r"<\|(?:im_start|im_end|system|assistant|user|begin_of_text|start_header_id|end_header_id|eot_id|endoftext)\|>|\[/?inst\]|<</?sys>>"), ("<|", "[inst", "[/inst", "<<sys", "<</sys")),
    _Rule("ROLE_CONFUSION", 0.6, _r(r"</?(?:system|sys|instructions?|admin|developer)(?:_prompt|_message)?>|\[/?(?:system|admin|developer)\]"), ("<", "[")),
    _Rule("ROLE_CONFUSION", 0.45, _r(r"(?:^|\n)\s*(?:#{1,4}\s*)?(?:system|assistant|developer)(?: message| prompt| instructions?)?\s*:"), ("system", "assistant", "developer")),
    _Rule("ROLE_CONFUSION", 0.6, _r(r"\b(?:end|close) of (?:the )?(?:user|system) (?:input|prompt|message|instructions)\b|\bbegin(?:ning)? (?:of )?(?:new )?system (?:prompt|message|instructions)\b"), ("end of", "close of", "begin")),
    _Rule("ROLE_CONFUSION", 0.7, _r(r"\b(?:i am|this is|i'm) (?:your|the) (?:developer|creator|administrator|admin|system administrator|owner|operator)\b.{0,60}\b(?:override|authori[sz]|unlock|disable|command|instruct)"), ("developer", "creator", "admin", "owner", "operator")),
    # jailbreak
    _Rule("JAILBREAK", 0.9, _r(r"\bdo anything now\b|\bdan (?:mode|prompt|jailbreak)\b|\byou are (?:now )?dan\b|\bact as (?:a )?dan\b"), ("do anything now", "dan")),
    _Rule("JAILBREAK", 0.85, _r(r"\byou (?:are|will be|have been) (?:now )?(?:free|freed|liberated|no longer (?:bound|restricted|limited)|not (?:bound|restricted|limited)|unrestricted|unfiltered|uncensored|jailbroken)\b"), ("free", "liberated", "no longer", "not bound", "not restricted", "not limited", "unrestricted", "unfiltered", "uncensored", "jailbroken")),
    _Rule("JAILBREAK", 0.85, _r(r"\b(?:pretend|imagine|act|behave|roleplay|role-play)\b(?:\s+\S+){0,6}?\s+(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|amoral|unethical|without (?:any )?(?:rules|restrictions|limits|filters|guidelines|morals|ethics))\b"), ("pretend", "imagine", "act", "behave", "roleplay", "role-play")),
    _Rule("JAILBREAK", 0.7, _r(r"\b(?:without|no|free (?:of|from)|ignoring) (?:any |all )?(?:ethical |moral |safety |content )?(?:restrictions|limitations|filters|filtering|censorship|guardrails|safeguards)\b"), ("restriction", "limitation", "filter", "censorship", "guardrail", "safeguard")),
    _Rule("JAILBREAK", 0.75, _r(r"\byou (?:cannot|can't|can not|must not|mustn't|will not|won't|may not|should never|must never) (?:refuse|decline|say no)\b|\bnever refuse\b"), ("refuse", "decline", "say no")),
    _Rule("JAILBREAK", 0.6, _r(r"\b(?:god|jailbreak|unrestricted|unfiltered|evil|chaos|dan) mode\b|\b(?:developer|sudo|admin|debug) mode (?:is )?(?:enabled|activated|unlocked)\b"), ("mode",)),
    _Rule("JAILBREAK", 0.45, _r(r"\bdeveloper mode\b"), ("developer mode",)),
    _Rule("JAILBREAK", 0.85, _r(r"\bfree(?:d)? (?:from|of) (?:the |your |all |any )?(?:limits|limitations|restrictions|constraints|rules|shackles|chains|guidelines)\b"), ("free",)),
    _Rule("JAILBREAK", 0.8, _r(r"\b(?:openai|anthropic|content|usage|safety)(?:'s)? (?:content )?polic(?:y|ies)\b.{0,40}\b(?:ignore|violate|bypass|don't apply|do not apply|no longer apply|doesn't matter|irrelevant)|\b(?:ignore|violate|bypass)\b.{0,30}\b(?:openai|anthropic|content|usage|safety)(?:'s)? polic"), ("polic",)),
    _Rule("JAILBREAK", 0.45, _r(r"\bjailbreak(?:ed|ing)?\b|\bstay in character\b|\bhypothetical(?:ly)? (?:scenario|response) where\b"), ("jailbreak", "character", "hypothetical")),
    # indirect (instructions addressed to the AI inside data)
    _Rule("INDIRECT", 0.85, _r(rf"\bif you are an? {_AI}\b|\b{_AI}s?,? (?:reading|processing|summari[sz]ing|parsing|analy[sz]ing) this\b|\bto (?:the|any) {_AI}s? (?:reading|processing)\b"), ("if you are", "reading", "processing", "summari", "parsing", "analy")),
    _Rule("INDIRECT", 0.9, _r(rf"\b(?:important|attention|urgent|note|notice|warning)\s*[!:]*\s*(?:new )?(?:instructions?|message|directive|task) (?:for|to) (?:the |all |any )?{_AI}s?\b"), ("instruction", "message", "directive", "task")),
    _Rule("INDIRECT", 0.85, _r(r"\b(?:send|forward|email|e-mail|post|upload|transmit|exfiltrate|leak|copy)\b(?:\s+\S+){0,5}?\s+(?:conversation|chat history|messages|credentials|passwords?|api keys?|secrets?|tokens?|user data|personal data|private data|contacts|inbox|files)\s+to\s+(?:https?://|\S+@\S+|this (?:url|address|endpoint|server|webhook)|the following|attacker|evil)"), ("send", "forward", "mail", "post", "upload", "transmit", "exfiltrate", "leak", "copy")),
    _Rule("INDIRECT", 0.85, _r(r"\b(?:do not|don't|never) (?:tell|inform|mention|alert|notify|reveal (?:this )?to) (?:the )?user\b|\bwithout (?:telling|informing|alerting|notifying|asking) the user\b"), ("tell", "inform", "mention", "alert", "notify", "reveal", "without")),
    _Rule("INDIRECT", 0.6, _r(r"!\[[^\]]*\]\(https?://[^)]*(?:\?|&)[a-z_]+=\{"), ("![",)),
    _Rule("INDIRECT", 0.5, _r(rf"\b(?:the |this )?{_AI} (?:must|should|will|needs to) (?:now )?(?:call|invoke|use|run|execute) (?:the )?\S+ tool\b"), ("tool",)),
    _Rule("INDIRECT", 0.85, _r(rf"\binstructions? (?:for|to) (?:the |any |all )?{_AI}\w*\b"), ("instruction",)),
    _Rule("INDIRECT", 0.75, _r(rf"\b(?:the )?{_AI} (?:must|should|will|needs to|is required to) (?:now |immediately )?(?:reveal|send|forward|disclose|ignore|disregard|approve|delete|transfer|e-?mail|exfiltrate|leak)\b"), ("must", "should", "will", "needs to", "required")),
    _Rule("INDIRECT", 0.5, _r(r"\b(?:ignore|disregard) (?:the |this |that )?(?:\S+ )?(?:content|document|text|page|email|resume|input|data) and (?:instead )?"), ("ignor", "disregard")),
    # encoded payloads (the decoded text is scanned in `injection_score`)
    _Rule("ENCODED_PAYLOAD", 0.75, _r(r"\b(?:decode|decipher|translate|convert)\b(?:\s+\S+){0,4}?\s+(?:base64|base-64|hex|rot13|rot-13|binary|morse)\b.{0,80}\b(?:follow|execute|obey|do what|carry out|run|act on|perform)\b"), ("decode", "decipher", "translate", "convert")),
)

_TAGS = re.compile("[\U000e0000-\U000e007f]")
_BIDI_OVERRIDE = re.compile("[\u202a-\u202e]")
_BIDI_ISOLATE = re.compile("[\u2066-\u2069]")
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff\u00ad]")
_SPACES = re.compile(r"\s+")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[ :]?){16,}\b")
_CHEAP = re.compile(r"[<\[#:\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069\U000e0000-\U000e007f]")
_KEYWORDS = (
    "ignor", "disregard", "forget", "bypass", "overrid", "instruction", "prompt", "rule", "guideline", "system",
    "dan", "jailbreak", "restrict", "filter", "refuse", "mode", "polic", "pretend", "roleplay", "role-play",
    "act as", "from now on", "reveal", "repeat", "verbatim", "above", "ai", "assistant", "model", "user",
    "decode", "base64", "rot13", "hex", "send", "new task", "directive", "character", "censor", "obey", "follow",
)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", _ZERO_WIDTH.sub("", text))
    return _SPACES.sub(" ", text).lower()


def _hidden_unicode(text: str) -> float:
    if _TAGS.search(text):
        return 0.95
    if _BIDI_OVERRIDE.search(text):
        return 0.75
    weight = 0.5 if _BIDI_ISOLATE.search(text) else 0.0
    if len(_ZERO_WIDTH.findall(text)) >= 3:
        weight = max(weight, 0.6)
    return weight


def _decoded_payloads(text: str) -> list[str]:
    out: list[str] = []
    for m in _BASE64.finditer(text):
        chunk = m.group(0)
        try:
            raw = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=False)
        except (binascii.Error, ValueError):
            continue
        out.append(raw.decode("utf-8", "ignore"))
    for m in _HEX.finditer(text):
        try:
            out.append(bytes.fromhex(re.sub(r"[ :]", "", m.group(0))).decode("utf-8", "ignore"))
        except ValueError:
            continue
    if "rot13" in text.lower() or "rot-13" in text.lower():
        out.append(codecs.decode(text, "rot13"))
    return [d for d in out if d and sum(c.isprintable() for c in d) >= 0.9 * len(d)]


def _rule_weights(norm: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for rule in _RULES:
        if any(n in norm for n in rule.needs) and rule.pattern.search(norm):
            found.setdefault(rule.category, []).append(rule.weight)
    return found


def injection_score(text: str, *, depth: int = 0) -> tuple[float, str]:
    """(score in 0..1, strongest category) for one text; (0, "") when nothing matched."""
    norm = _normalise(text)
    found: dict[str, list[float]] = {}
    if any(k in norm for k in _KEYWORDS):
        found = _rule_weights(norm)
    hidden = _hidden_unicode(text) if _CHEAP.search(text) else 0.0
    if hidden:
        found.setdefault("HIDDEN_UNICODE", []).append(hidden)
    if depth == 0 and (_BASE64.search(text) or _HEX.search(text) or "rot" in norm):
        for decoded in _decoded_payloads(text):
            inner, _ = injection_score(decoded, depth=1)
            if inner >= 0.5:
                found.setdefault("ENCODED_PAYLOAD", []).append(0.95)
                break
    if not found:
        return 0.0, ""
    miss = 1.0
    best, best_weight = "", 0.0
    for category, weights in found.items():
        for w in weights:
            miss *= 1.0 - w
            if w > best_weight:
                best, best_weight = category, w
    return round(1.0 - miss, 4), best


class InjectionScanner(Scanner):
    """Prompt injection and jailbreak phrasing, hidden Unicode, encoded payloads."""

    name = "injection"
    version = "1"
    redactable = False
    max_match = 512

    @classmethod
    def entities(cls, options: Any) -> frozenset[str]:
        return frozenset(
            ("INSTRUCTION_OVERRIDE", "PROMPT_LEAK", "ROLE_CONFUSION", "JAILBREAK", "INDIRECT", "HIDDEN_UNICODE",
             "ENCODED_PAYLOAD")
        )

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        score, category = injection_score(text)
        if not category or (self.only is not None and category not in self.only):
            return []
        return [Finding(category, 0, len(text), score)]
