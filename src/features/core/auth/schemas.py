"""Form shapes of sign-up and sign-in, with their validation messages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from features.users.service import email_error, name_error
from shared.security.passwords import MAX_BYTES, MIN_LENGTH

FieldErrors = dict[str, str]

_COMMON = frozenset(
    line.strip().lower()
    for line in (Path(__file__).parent / "common_passwords.txt").read_text().splitlines()
    if line.strip()
)


def password_error(password: str) -> str | None:
    """Why ``password`` is not acceptable, or ``None`` (SECURITY.md S3, ASVS 6.2).

    At least 8 characters; any characters, no composition rules; at most 4 KiB (refused before
    hashing, never truncated); not one of the most common passwords.
    """
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password.encode()) > MAX_BYTES:
        return "That password is too long (at most 4096 bytes)."
    if password.lower() in _COMMON:
        return "That password is too common. Choose a less predictable one."
    return None


@dataclass(frozen=True, slots=True)
class RegisterForm:
    """Sign-up fields."""

    name: str
    email: str
    password: str


@dataclass(frozen=True, slots=True)
class LoginForm:
    """Sign-in fields. ``remember`` extends the session to the remember-me lifetime."""

    email: str
    password: str
    remember: bool


def parse_register(data: dict[str, str]) -> tuple[RegisterForm | None, FieldErrors]:
    """Validate a sign-up post; returns the form or the errors by field name."""
    errors: FieldErrors = {}
    name, email = data.get("name", ""), data.get("email", "")
    password, confirmation = data.get("password", ""), data.get("password_confirmation", "")
    if message := name_error(name):
        errors["name"] = message
    if message := email_error(email):
        errors["email"] = message
    if message := password_error(password):
        errors["password"] = message
    elif password != confirmation:
        errors["password_confirmation"] = "The two passwords do not match."
    if errors:
        return None, errors
    return RegisterForm(name=name, email=email, password=password), {}


def parse_login(data: dict[str, str]) -> tuple[LoginForm | None, FieldErrors]:
    """Validate a sign-in post's shape (not the credentials)."""
    errors: FieldErrors = {}
    email, password = data.get("email", ""), data.get("password", "")
    if not email:
        errors["email"] = "Enter your email address."
    elif len(email) > 254:
        errors["email"] = "An email address has at most 254 characters."
    if not password:
        errors["password"] = "Enter your password."
    elif len(password.encode()) > MAX_BYTES:
        errors["password"] = "That password is too long (at most 4096 bytes)."
    if errors:
        return None, errors
    return LoginForm(
        email=email, password=password, remember=data.get("remember") in ("1", "on", "true")
    ), {}
