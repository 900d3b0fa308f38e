"""The model registry (after CompressAI's): ``@register_model('name')`` makes a model available by name to the CLIs
(``--model NAME``); ``build_model(name, **config)`` builds it from its Config fields."""
MODELS = {}


def register_model(name):
    """Class decorator: make a model available by name to the CLIs (``--model NAME``)."""
    def wrap(cls):
        MODELS[name] = cls
        cls.model_name = name
        return cls
    return wrap


def build_model(name, **config):
    if name not in MODELS:
        raise ValueError('unknown model "{}", should be one of {}'.format(name, sorted(MODELS)))
    cls = MODELS[name]
    return cls(cls.Config(**config))
