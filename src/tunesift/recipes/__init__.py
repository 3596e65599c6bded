"""Methods as data: a YAML recipe names a scorer and the selection steps after it (:mod:`.load` reads and
checks one, :mod:`.steps` is the step engine and the rules, :mod:`.run` executes one, :mod:`.pipelines` holds
the methods that are more than a recipe). The built-in recipes are the YAML files beside this module."""

from tunesift.recipes.load import (
    BUILTIN_DIR,
    CUT_RATE,
    DROP,
    EXECUTOR_KEYS,
    KEEP,
    PER_QUESTION,
    STEP_KINDS,
    THRESHOLD,
    Recipe,
    builtin_names,
    default_recipe,
    load_recipe,
    parse_recipe,
    run_names,
    with_per_question,
)
from tunesift.recipes.run import RecipeRun, execute
from tunesift.recipes.steps import OPERATORS, RULE_RECIPES, apply_steps, rule_steps, select_by_rule

__all__ = [
    "BUILTIN_DIR",
    "CUT_RATE",
    "DROP",
    "EXECUTOR_KEYS",
    "KEEP",
    "OPERATORS",
    "PER_QUESTION",
    "RULE_RECIPES",
    "STEP_KINDS",
    "THRESHOLD",
    "Recipe",
    "RecipeRun",
    "apply_steps",
    "builtin_names",
    "default_recipe",
    "execute",
    "load_recipe",
    "parse_recipe",
    "rule_steps",
    "run_names",
    "select_by_rule",
    "with_per_question",
]
