"""Model objects built without Model.__init__, for the postback path: the same objects, made faster.

A postback builds three new objects (the conversion, its audit entry, the postback log entry) and loads six
(tracking/hotpath.py). Model.__init__ sets each field through its descriptor, and a foreign key given as an
object through ForwardManyToOneDescriptor.__set__ (type check, routers, caches): together more Python than
deciding the conversion's commission. For a *plain* model (no custom ``__init__`` or ``from_db``, no
pre_init/post_init receiver, no database routers) the result of Model.__init__ is known: a __dict__ of
attribute values and the related objects in ``_state.fields_cache``. ``new_instance`` and ``loaded_instance``
build exactly that (tests/tracking/test_instances.py compares them with the ORM's own objects); anything
else goes through the ORM.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db.models import ForeignKey, Model, signals
from django.db.models.base import ModelState

M = TypeVar("M", bound=Model)


def is_plain(model: type[Model]) -> bool:
    """Whether Model.__init__ and Model.from_db of ``model`` do nothing beyond setting its fields."""
    return (
        model.__init__ is Model.__init__
        and model.from_db.__func__ is Model.from_db.__func__
        and not signals.pre_init.has_listeners(model)
        and not signals.post_init.has_listeners(model)
        and not settings.DATABASE_ROUTERS
    )


@dataclass(frozen=True)
class Plan:
    """How Model.__init__ fills an object of a plain model without arguments, and which names it takes."""

    constant: dict  # attname -> a default that is not called (the same value Field.get_default gives each time)
    made: tuple[tuple[str, Callable[[], object]], ...]  # (attname, default to call) for callable defaults
    related: dict  # foreign key name -> (attname, the related concrete model, its target attribute)
    names: frozenset[str]  # the field names and attnames Model.__init__ accepts as keyword arguments


@cache
def _plan(model: type[Model]) -> Plan | None:
    if not is_plain(model):
        return None
    constant, made, related, names = {}, [], {}, set()
    for field in model._meta.fields:
        if field.column is None or field.generated:
            continue  # virtual: Model.__init__ skips them too
        names.update((field.name, field.attname))
        if isinstance(field, ForeignKey):
            if len(field.related_fields) != 1:
                return None
            related[field.name] = (
                field.attname,
                field.remote_field.model._meta.concrete_model,
                field.target_field.attname,
            )
        if (field.has_default() and callable(field.default)) or field.has_db_default():
            made.append((field.attname, field.get_default))
        else:
            constant[field.attname] = field.get_default()
    return Plan(constant, tuple(made), related, frozenset(names))


def new_instance(model: type[M], **values) -> M:
    """``model(**values)``: an unsaved object with the given field values and every other field's default."""
    plan = _plan(model)
    if plan is None or not plan.names.issuperset(values):  # properties, unknown names: Model.__init__ decides
        return model(**values)
    obj = model.__new__(model)
    state = obj._state = ModelState()
    attributes = obj.__dict__
    attributes.update(plan.constant)
    for attname, default in plan.made:
        if attname not in values:
            attributes[attname] = default()
    for name, value in values.items():
        foreign_key = plan.related.get(name)
        if foreign_key is None:  # a field's value, or a foreign key's id
            attributes[name] = value
            continue
        attname, related_model, target = foreign_key
        if attname in values:  # both the object and its id: let Model.__init__ settle it
            return model(**values)
        if value is None:
            attributes[attname] = None
        else:
            if not isinstance(value, related_model):
                return model(**values)  # raises the ORM's ValueError
            attributes[attname] = getattr(value, target)
            value_state = value._state  # the databases ForwardManyToOneDescriptor.__set__ sets, with no router
            if state.db is None:
                state.db = value_state.db or DEFAULT_DB_ALIAS
            if value_state.db is None:
                value_state.db = state.db
        state.fields_cache[name] = value
    return obj


@cache
def _loaded_attnames(model: type[Model]) -> tuple[str, ...] | None:
    return tuple(field.attname for field in model._meta.concrete_fields) if is_plain(model) else None


def loaded_instance(
    model: type[M], values: list, db: str = DEFAULT_DB_ALIAS, attnames: tuple[str, ...] | None = None
) -> M:
    """``model.from_db(db, attnames, values)``: the object the ORM builds from a row (values already converted
    from the database's types) of every concrete field, or of the fields ``attnames`` with the rest deferred,
    as ``.only()`` leaves them: absent from the object's __dict__, read from the database when first used."""
    every = _loaded_attnames(model)
    if every is None:
        names = attnames or [field.attname for field in model._meta.concrete_fields]
        return model.from_db(db, names, values)
    obj = model.__new__(model)
    obj._state = ModelState()
    obj._state.adding, obj._state.db = False, db
    obj.__dict__.update(zip(attnames or every, values, strict=True))
    return obj


@cache
def _foreign_key(model: type[Model], name: str) -> tuple[str, str]:
    field = model._meta.get_field(name)
    if not isinstance(field, ForeignKey) or len(field.related_fields) != 1:
        raise TypeError(f"{model.__name__}.{name} is not a single-column foreign key")
    return field.attname, field.target_field.attname


def attach(obj: Model, name: str, related: Model | None) -> None:
    """``obj.<name> = related`` for the foreign key ``name``, as ForwardManyToOneDescriptor.__set__ leaves it (the
    id and the cached object), for an ``obj`` of a plain model and a ``related`` object of the right model
    that is saved or None: the descriptor's type and router checks are what this skips."""
    attname, target = _foreign_key(type(obj), name)
    obj.__dict__[attname] = None if related is None else getattr(related, target)
    obj._state.fields_cache[name] = related
