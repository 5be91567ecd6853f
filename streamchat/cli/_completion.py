"""`completion`: the shell scripts for bash, zsh and fish (Typer's, with bash's fixed), and the
classes that answer a Tab press.

Bash splits the word being completed at `COMP_WORDBREAKS`, which holds `:` and `=`: Typer's bash
script passed those pieces on as words, so `-m openai:<Tab>` completed `openai` `:` and bash
listed files. Our bash script passes the line up to the cursor instead (read as zsh's and
fish's are), and takes the part bash split off again from each candidate, since bash replaces
only what follows the last break.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from streamchat.cli._app import CHAT, COMPLETE_VAR, GLOBAL_FLAGS, GLOBAL_VALUE_OPTIONS, SHELLS, _skip_options, app

BASH_SCRIPT = r"""
%(complete_func)s() {
    local IFS=$'\n'
    local line="${COMP_LINE:0:COMP_POINT}"
    COMPREPLY=( $( env _TYPER_COMPLETE_ARGS="$line" %(autocomplete_var)s=complete_bash $1 ) )
    # The candidates are whole values (openai:gpt-4o), but bash replaces only what follows the
    # word's last COMP_WORDBREAKS character (':' or '='): take the part before it off each one.
    local value="${line##*[[:space:]]}" c
    [[ $value == -*=* ]] && value="${value#*=}"  # --model=openai:g: the value is openai:g
    local tail="$value"
    for c in : =; do
        [[ $COMP_WORDBREAKS == *"$c"* ]] && tail="${tail##*"$c"}"
    done
    local strip="${value%%"$tail"}"
    [[ -n $strip ]] && COMPREPLY=( "${COMPREPLY[@]#"$strip"}" )
    return 0
}

complete -o default -F %(complete_func)s %(prog_name)s
"""


def init_completion() -> None:
    """Register the classes that answer a Tab press (a bash one that reads the line itself).
    Typer has no public API for its shell classes and scripts: every use of them is here."""
    from typer import _completion_shared
    from typer._click.shell_completion import CompletionItem, add_completion_class
    from typer._completion_classes import BashComplete, FishComplete, ZshComplete, completion_init

    class ChatOption:
        """`--role=sh<Tab>` before any prompt word: the option is chat's (the default command), which
        the group, completing there, does not know (it offered its commands)."""

        cli: Any  # the root command, as ShellComplete has it

        def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
            option, equals, _ = incomplete.partition("=")
            if (equals and option.startswith("-") and _skip_options(args, GLOBAL_VALUE_OPTIONS, GLOBAL_FLAGS) == len(args)
                    and option not in {name for param in self.cli.params for name in param.opts}):
                args = [CHAT, *args]
            items: list[CompletionItem] = super().get_completions(args, incomplete)  # type: ignore[misc]
            return items

    class LineBashComplete(ChatOption, BashComplete):
        source_template = BASH_SCRIPT

        def get_completion_args(self) -> tuple[list[str], str]:
            if "_TYPER_COMPLETE_ARGS" in os.environ:  # our script: the line up to the cursor, as zsh passes it
                return ZshComplete.get_completion_args(self)  # type: ignore[arg-type]
            return super().get_completion_args()  # a script installed before: COMP_WORDS

    class WholeWord(ChatOption):
        """zsh and fish replace the whole word: `--model=compat:` needs `--model=compat:x`, not the value alone."""

        def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
            items = super().get_completions(args, incomplete)
            option, equals, _ = incomplete.partition("=")
            if not (option.startswith("-") and equals):
                return items
            return [CompletionItem(f"{option}={item.value}", help=item.help) for item in items]

    class WholeWordZsh(WholeWord, ZshComplete):
        pass

    class WholeWordFish(WholeWord, FishComplete):
        pass

    completion_init()
    add_completion_class(LineBashComplete, "bash")
    add_completion_class(WholeWordZsh, "zsh")
    add_completion_class(WholeWordFish, "fish")
    _completion_shared._completion_scripts["bash"] = BASH_SCRIPT  # what `completion bash` prints and installs


@app.command("completion", help="Print the shell completion script (bash, zsh or fish), or install it.",
             short_help="Print or install shell completion.")
def completion(
    shell: Annotated[str, typer.Argument(metavar="SHELL", show_default=False, help="bash, zsh or fish.")],
    install: Annotated[bool, typer.Option("--install", help="Add it to the shell's startup files.")] = False,
) -> None:
    from typer import _completion_shared

    init_completion()
    if shell not in SHELLS:
        raise typer.BadParameter(f"must be one of {', '.join(SHELLS)}", param_hint="SHELL")
    if install:
        path = _completion_shared.install(shell=shell, prog_name="streamchat", complete_var=COMPLETE_VAR)[1]
        print(f"installed {shell} completion in {path}; open a new shell to use it", file=sys.stderr)
        return
    print(_completion_shared.get_completion_script(prog_name="streamchat", complete_var=COMPLETE_VAR, shell=shell))
