"""Launch substitutions ``$(name arg ...)``: the grammar (nesting and quoting, following launch's
grammar.lark) and the shell-like splitting of ``args`` / ``ros_args`` around substituted values.
What each substitution means is evaluated in ssl_robot.ros.launch_xml."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from ssl_robot.ros.launch_xml_syntax import LaunchFileError, Location

# Substitution name -> (fewest, most) arguments.
SUBSTITUTIONS = {'var': (1, 1), 'env': (1, 2), 'find-pkg-share': (1, 1), 'dirname': (0, 0)}
_IDENTIFIER = re.compile(r'[A-Za-z][A-Za-z0-9_-]*')


@dataclass(frozen=True)
class Substitution:
    name: str
    arguments: tuple[tuple[str | Substitution, ...], ...]


Template = tuple[str | Substitution, ...]


class _TemplateParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def error(self, message: str) -> ValueError:
        return ValueError(f'{message} at character {self.position + 1} of {self.text!r}')

    def template(self) -> Template:
        return self._parts(stop='')

    def _parts(self, stop: str) -> Template:
        """Literal text and substitutions up to (not including) a character in `stop`."""
        parts: list[str | Substitution] = []
        literal: list[str] = []
        while self.position < len(self.text) and self.text[self.position] not in stop:
            if self.text.startswith('$(', self.position):
                if literal:
                    parts.append(''.join(literal))
                    literal = []
                parts.append(self._substitution())
            else:
                literal.append(self.text[self.position])
                self.position += 1
        if literal:
            parts.append(''.join(literal))
        return tuple(parts)

    def _substitution(self) -> Substitution:
        self.position += 2
        match = _IDENTIFIER.match(self.text, self.position)
        if match is None:
            raise self.error('expected a substitution name after "$("')
        self.position = match.end()
        arguments = []
        while True:
            if self.position >= len(self.text):
                raise self.error(f'unterminated $({match.group()} ...)')
            if self.text[self.position] == ')':
                self.position += 1
                return Substitution(match.group(), tuple(arguments))
            if self.text[self.position] != ' ':
                raise self.error('expected a space or ")"')
            while self.text.startswith(' ', self.position):
                self.position += 1
            arguments.append(self._argument())

    def _argument(self) -> Template:
        quote = self.text[self.position] if self.position < len(self.text) else ''
        if quote in ("'", '"'):
            self.position += 1
            value = self._parts(stop=quote)
            if self.position >= len(self.text):
                raise self.error(f'unterminated {quote}-quoted argument')
            self.position += 1
            return value
        value = self._parts(stop=' ()')
        if self.text.startswith('(', self.position):
            raise self.error('"(" in an unquoted substitution argument')
        return value


def parse_template(text: str, where: Location) -> Template:
    try:
        return _TemplateParser(text).template()
    except ValueError as error:
        raise LaunchFileError(f'{where}: {error}') from error



def split_command_line(template: Template, evaluate, where: Location) -> list[str]:
    """Split like launch's ExecuteProcess._parse_cmdline: literal text is split shell-style, while a
    substitution's value joins the literal text touching it into one argument, spaces and all."""
    arguments: list[str] = []
    current: list[str] = []

    def finish_argument() -> None:
        if current:
            arguments.append(''.join(current))
            current.clear()

    for part in template:
        if isinstance(part, Substitution):
            current.append(evaluate(part))
            continue
        try:
            tokens = shlex.split(part)
        except ValueError as error:
            raise LaunchFileError(f'{where}: cannot split {part!r} into arguments: {error}') from error
        if part[0].isspace() or not tokens:
            finish_argument()
        if not tokens:
            continue
        current.append(tokens[0])
        if len(tokens) > 1:
            finish_argument()
            arguments.extend(tokens[1:-1])
            current.append(tokens[-1])
        if part[-1].isspace():
            finish_argument()
    finish_argument()
    return arguments

