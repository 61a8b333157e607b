"""Argon2 through libargon2's context API with reusable working memory (SECURITY.md S1).

The hashes must be exactly argon2-cffi's: the same bytes for the same salt, and each side
verifies the other's.
"""

from __future__ import annotations

import asyncio

import pytest
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError
from argon2.low_level import ARGON2_VERSION, hash_secret

from shared.security import passwords as passwords_module
from shared.security.argon2_memory import Argon2Hash, WorkingMemory, decode, encode, hash_raw
from shared.security.passwords import Passwords

PASSWORD = "correct horse battery staple"
SMALL = {"time_cost": 1, "memory_kib": 64, "parallelism": 1}  # fast, still real Argon2id


def small_passwords() -> Passwords:
    return Passwords(time_cost=1, memory_kib=64, parallelism=1, threads=1)


# Known answers from the reference implementation's own test suite (libargon2, src/test.c,
# "Test Argon2id version number: 13"): password "password", salt "somesalt", 32 bytes.
# libargon2 may be compiled here for AVX2 (Makefile, ARGON2_AVX2) rather than taken from the
# SSE2 wheel: whichever build is installed must compute these same hashes.
REFERENCE_ARGON2ID = [
    # (time_cost, memory_kib, parallelism, password, salt, PHC string)
    (
        2,
        2**16,
        1,
        "password",
        "somesalt",
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
    ),
    (
        2,
        2**8,
        1,
        "password",
        "somesalt",
        "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
    ),
    (
        2,
        2**8,
        2,
        "password",
        "somesalt",
        "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc",
    ),
    (
        1,
        2**16,
        1,
        "password",
        "somesalt",
        "$argon2id$v=19$m=65536,t=1,p=1$c29tZXNhbHQ$9qWtwbpyPd3vm1rB1GThgPzZ3/ydHL92zKL+15XZypg",
    ),
    (
        2,
        2**16,
        1,
        "differentpassword",
        "somesalt",
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$C4TWUs9rDEvq7w3+J4umqA32aWKB1+DSiRuBfYxFj94",
    ),
    (
        2,
        2**16,
        1,
        "password",
        "diffsalt",
        "$argon2id$v=19$m=65536,t=2,p=1$ZGlmZnNhbHQ$vfMrBczELrFdWP0ZsfhWsRPaHppYdP3MVEMIVlqoFBw",
    ),
]


@pytest.mark.parametrize(
    ("time_cost", "memory_kib", "parallelism", "password", "salt", "phc"), REFERENCE_ARGON2ID
)
def test_s1_installed_libargon2_gives_the_reference_implementations_known_answers(
    time_cost: int, memory_kib: int, parallelism: int, password: str, salt: str, phc: str
) -> None:
    digest = hash_raw(
        WorkingMemory(),
        password.encode(),
        salt.encode(),
        type=Type.ID,
        memory_kib=memory_kib,
        time_cost=time_cost,
        parallelism=parallelism,
        hash_len=32,
    )
    value = Argon2Hash(
        Type.ID, ARGON2_VERSION, memory_kib, time_cost, parallelism, salt.encode(), digest
    )
    assert encode(value) == phc
    assert PasswordHasher().verify(phc, password)  # argon2-cffi's own path agrees


@pytest.mark.parametrize("kind", [Type.ID, Type.I, Type.D])
def test_s1_hash_and_encoding_match_argon2_cffi_byte_for_byte(kind: Type) -> None:
    salt = bytes(range(16))
    reference = hash_secret(PASSWORD.encode(), salt, 2, 256, 1, 32, kind).decode()
    digest = hash_raw(
        WorkingMemory(),
        PASSWORD.encode(),
        salt,
        type=kind,
        memory_kib=256,
        time_cost=2,
        parallelism=1,
        hash_len=32,
    )
    ours = encode(Argon2Hash(kind, ARGON2_VERSION, 256, 2, 1, salt, digest))
    assert ours == reference
    assert decode(reference) == Argon2Hash(kind, ARGON2_VERSION, 256, 2, 1, salt, digest)


def test_s1_hashes_verify_both_ways_with_argon2_cffi() -> None:
    passwords = small_passwords()
    library = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)

    async def check() -> None:
        ours = await passwords.hash(PASSWORD)
        assert ours.startswith("$argon2id$v=19$m=64,t=1,p=1$")
        assert library.verify(ours, PASSWORD)
        theirs = library.hash(PASSWORD)
        assert await passwords.verify(theirs, PASSWORD) is True
        assert await passwords.verify(theirs, PASSWORD + "!") is False
        assert await passwords.verify(ours, PASSWORD + "!") is False
        # Other parameters and type than the current ones (an old hash, S2): read from the hash.
        older = PasswordHasher(time_cost=3, memory_cost=128, parallelism=2, type=Type.I)
        assert await passwords.verify(older.hash(PASSWORD), PASSWORD) is True

    asyncio.run(check())


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$",
        "$argon2id$v=19$m=64,t=1,p=1,x=2$c2FsdHNhbHRzYWx0$c2FsdHNhbHRzYWx0",
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$c2FsdHNhbHRzYWx0$",
        "$bcrypt$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$c2FsdHNhbHRzYWx0",
    ],
)
def test_s1_a_malformed_stored_hash_never_matches(stored: str) -> None:
    assert asyncio.run(small_passwords().verify(stored, PASSWORD)) is False


def test_decode_refuses_what_it_does_not_read() -> None:
    with pytest.raises(InvalidHashError):
        decode("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$AAAAA")  # no base64 length
    with pytest.raises(InvalidHashError):
        decode("$argon2id$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$c2FsdHNhbHRzYWx0")  # no version


def test_a_hash_in_a_rarer_form_is_left_to_argon2_cffi() -> None:
    # Version 1.0 hashes carry no "v=" field; argon2-cffi still reads them.
    salt = b"saltsaltsaltsalt"
    digest = hash_raw(
        WorkingMemory(), PASSWORD.encode(), salt, type=Type.ID, **SMALL, hash_len=32, version=0x10
    )
    encoded = encode(Argon2Hash(Type.ID, 0x10, 64, 1, 1, salt, digest)).replace("$v=16", "")
    assert asyncio.run(small_passwords().verify(encoded, PASSWORD)) is True


def test_s1_working_memory_is_reused_and_wiped_between_hashes() -> None:
    memory = WorkingMemory()
    for _ in range(3):
        hash_raw(memory, PASSWORD.encode(), bytes(16), type=Type.ID, **SMALL, hash_len=32)
    assert memory.held_bytes() == 64 * 1024  # one block, taken again by each hash
    ((region, _view),) = memory._idle
    assert region[:] == bytes(len(region))  # libargon2 zeroes it before giving it back
    assert memory.release() == 64 * 1024
    assert memory.held_bytes() == 0


def test_s1_idle_working_memory_goes_back_to_the_os(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords_module, "IDLE_RELEASE_SECONDS", 0.05)
    passwords = small_passwords()

    async def check() -> tuple[int, int]:
        digest = await passwords.hash(PASSWORD)
        await passwords.verify(digest, PASSWORD)
        kept = passwords.memory.held_bytes()
        await asyncio.sleep(0.3)
        return kept, passwords.memory.held_bytes()

    assert asyncio.run(check()) == (64 * 1024, 0)
