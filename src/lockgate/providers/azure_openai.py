"""Azure OpenAI: the OpenAI dialect (`OpenAICompatible`) at Azure's URLs, with its key
in the `api-key` header. A route's `model` is the deployment's name:

    {base_url}/openai/deployments/{deployment}/chat/completions?api-version={api_version}
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

import aiohttp

from lockgate.config.schema import AzureOpenAIProviderConfig
from lockgate.providers.openai import OpenAICompatible

__all__ = ["AzureOpenAIProvider"]


class AzureOpenAIProvider(OpenAICompatible):
    system = "azure.ai.openai"

    def __init__(
        self,
        name: str,
        config: AzureOpenAIProviderConfig,
        *,
        session: aiohttp.ClientSession,
        api_key: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        headers = dict(config.headers)
        if api_key:
            headers["api-key"] = api_key
        super().__init__(
            name, base_url=config.base_url, session=session, headers=headers, clock=clock
        )
        self._query = f"?api-version={quote(config.api_version, safe='')}"

    def url(self, model: str, path: str) -> str:
        deployment = quote(model, safe="")
        return f"{self.base_url}/openai/deployments/{deployment}/{path}{self._query}"
