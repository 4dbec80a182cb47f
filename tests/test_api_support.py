"""Shared pieces of the search tests: a small patent corpus in Elasticsearch and a hashing encoder.

The corpus is synthetic but goes through the real mapping, the real Kiwi
analyser and the real indexing job. The encoder hashes character bigrams and
words into a fixed-width vector: crude, deterministic and fast, so the tests
can compare the service with a numpy reference without a trained model.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np
import pytest

from ingest.index import patents_index_body
from ingest.korean import analyze
from ingest.normalize import content_hash
from patentmatch.config import Settings

DIM = 64

TOPICS = [
    # (words, IPC, 6T)
    (["딥러닝", "영상", "인식", "신경망", "카메라", "객체", "검출", "학습"], "G06N 3/08", "IT"),
    (["리튬", "이차전지", "전극", "배터리", "양극", "전해질", "충전"], "H01M 10/05", "ET"),
    (["화장품", "피부", "보습", "조성물", "추출물", "주름", "개선"], "A61K 8/97", "BT"),
    (["반도체", "웨이퍼", "식각", "기판", "증착", "패턴", "박막"], "H01L 21/67", "NT"),
    (["항체", "단백질", "치료", "암", "의약", "세포", "발현"], "A61K 39/395", "BT"),
    (["공기", "정화", "필터", "먼지", "집진", "송풍", "청정"], "B01D 46/00", "ET"),
]
FILLER = ["장치", "방법", "시스템", "구성", "제공", "포함", "이용", "구조"]
APPLICANTS = ["삼성전자 주식회사", "엘지전자 주식회사", "한국과학기술원", "서울대학교산학협력단"]
STATUSES = ["등록", "공개", "소멸"]


class HashingEncoder:
    """Deterministic bag-of-features encoder with the ``PatentEncoder`` interface."""

    def __init__(self, dimension: int = DIM):
        self.dimension = dimension
        self.name = f"hashing-{dimension}"
        self.fingerprint = hashlib.sha256(self.name.encode()).hexdigest()
        self.calls = 0

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        words = text.split()
        features = words + [text[i:i + 2] for i in range(len(text) - 1)]
        for feature in features:
            digest = hashlib.md5(feature.encode()).digest()
            index = int.from_bytes(digest[:4], "little") % self.dimension
            vector[index] += 1.0 if digest[4] % 2 else -1.0
        norm = np.linalg.norm(vector)
        if norm == 0:
            vector[0] = 1.0
            return vector
        return vector / norm

    def encode(self, texts, batch_size=None, show_progress=None) -> np.ndarray:
        self.calls += 1
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)


@dataclass
class Corpus:
    alias: str
    index: str
    documents: list[dict]


def make_documents(count: int = 60, seed: int = 11) -> list[dict]:
    """Return patent documents in the indexed shape, spread over six topics."""
    rng = random.Random(seed)
    documents = []
    for i in range(count):
        words, ipc, six_t = TOPICS[i % len(TOPICS)]
        title = " ".join(rng.sample(words, 3) + [rng.choice(FILLER)])
        abstract = " ".join(rng.choice(words) if rng.random() < 0.7 else rng.choice(FILLER)
                            for _ in range(25))
        year = 2005 + i % 20
        number = f"10{year}{i + 1:07d}"
        documents.append({
            "application_number": number,
            "title": title,
            "title_terms": analyze(title),
            "abstract": abstract,
            "abstract_terms": analyze(abstract),
            "ipc": [ipc],
            "ipc_subclass": [ipc[:4]],
            "applicants": [APPLICANTS[i % len(APPLICANTS)]],
            "applicant": APPLICANTS[i % len(APPLICANTS)],
            "application_date": f"{year}-0{1 + i % 9}-1{i % 10}",
            "register_status": STATUSES[i % len(STATUSES)],
            "six_t": six_t,
            "six_t_source": "table",
            "scores": {"pqi": round(0.5 + (i % 10) / 10, 2), "rights": 40.0 + i % 50,
                       "technology": 30.0 + (i * 7) % 60, "commercial": 20.0 + (i * 3) % 70,
                       "source": "synthetic"},
            "content_hash": content_hash(title, abstract),
        })
    return documents


def index_documents(es_client, alias: str, documents: list[dict], version: str = "v1") -> str:
    """Create ``<alias>-<version>``, put ``documents`` in it and point ``alias`` at it."""
    name = f"{alias}-{version}"
    body = patents_index_body()
    es_client.indices.create(index=name, settings=body["settings"], mappings=body["mappings"])
    operations = []
    for document in documents:
        operations.append({"index": {"_index": name, "_id": document["application_number"]}})
        operations.append(document)
    reply = es_client.bulk(operations=operations, refresh=True)
    assert not reply["errors"], reply
    es_client.indices.put_alias(index=name, name=alias)
    return name


@pytest.fixture()
def corpus(es_client, index_prefix) -> Corpus:
    alias = f"{index_prefix}-patents"
    documents = make_documents()
    name = index_documents(es_client, alias, documents)
    return Corpus(alias, name, documents)


@pytest.fixture()
def encoder() -> HashingEncoder:
    return HashingEncoder()


@pytest.fixture()
def search_settings(es_url, corpus, tmp_path) -> Settings:
    return Settings(es_url=es_url, index_alias=corpus.alias, cache_dir=tmp_path,
                    max_request_bytes=4096, request_timeout_s=30.0)
