"""The task's aggregation rule as its aggregator runs it: the rule the task document names,
with what only the aggregator can give it (FLTrust's root data, FairFL's trigger screen
pointed at the model's input layer and, for sparse updates, over two rounds, the noise
control and no NOISE check for DP-SGD updates). A watermark task's document records its
own rule change (no NOISE check, :meth:`fl_agent.learning.task_doc.TaskDocument.build`)."""

from __future__ import annotations

import dataclasses

import numpy as np

from fl_agent.aggregation import FLTrust, get_strategy
from fl_agent.aggregation.base import Strategy
from fl_agent.aggregation.clustering import chance_z_off
from fl_agent.aggregation.fairfl import FairFL as FairFLStrategy
from fl_agent.learning.models import ModelSpec, input_layer, param_count
from fl_agent.learning.task_doc import TaskDocument
from fl_agent.learning.training import train_local

#: How many of a sender's latest rounds FairFL's trigger screen adds up in a task that
#: prunes (``FairFL.trigger_rounds``): chosen on tuning seeds 1-3 (digits, 30 % corner-trigger
#: backdoor, blacklisting on, per-tensor top-k): at ratio 0.9 the update alone let the
#: backdoor in on two seeds of three (attack success 0.80 and 0.89), and so it did at
#: 0.95-0.98; 2 and 3 kept it out (at most 0.006); at 0.99, 3 rejected more honest updates
#: than 2 (docs/privacy-sparse.md).
PRUNE_TRIGGER_ROUNDS = 2


def trigger_screen_layer(spec: ModelSpec, feature_shape: tuple[int, ...]
                         ) -> tuple[int, int, int] | None:
    """The input layer FairFL's trigger screen reads (its step 1b), or None to skip it.

    Only for image data (``feature_shape``, the data's shape before a dense model flattens
    it, has two or more axes) read by a dense layer: a trigger patch shows as a few pixel
    columns carrying most of the change, and pixels are alike enough for that to stand out.
    Tabular features differ in scale and tail, and an honest client piles its change on a
    heavy-tailed one (breast_cancer without attack: 3 % of honest MLP and 13 % of honest
    logistic-regression updates were taken for triggers), so a tabular task is screened
    only if it names ``input_layer`` in its aggregation options. A CNN has no per-feature
    input layer."""
    return input_layer(spec) if len(feature_shape) >= 2 else None


def task_strategy(document: TaskDocument, X_val: np.ndarray, y_val: np.ndarray,
                  strategy: Strategy | None = None) -> Strategy:
    """The task's rule (``strategy``, else the task document's) as the aggregator runs it:
    FairFL's trigger screen pointed at the model's input layer, and FLTrust's server update
    trained from the global model on the aggregator's own validation split (its root data
    set, as in Cao et al. 2021; ``X_val`` standardised), with the task's training plan and
    a fixed seed."""
    if strategy is None:
        plan = document.aggregation
        options = dict(plan.options)
        if plan.strategy == FLTrust.name and "server_update" not in options:
            training = document.training

            def root_data_update(global_params: np.ndarray) -> np.ndarray:
                return train_local(document.model, global_params, X_val, y_val,
                                   training.steps, seed=0, batch_size=training.batch_size,
                                   lr=training.lr, momentum=training.momentum).vector

            options["server_update"] = root_data_update
        strategy = get_strategy(plan.strategy, **options)
    if isinstance(strategy, FairFLStrategy) and strategy.input_layer is None:
        strategy = dataclasses.replace(strategy, input_layer=trigger_screen_layer(
            document.model, document.data.feature_shape))
    privacy = document.privacy
    if isinstance(strategy, FairFLStrategy) and privacy is not None \
            and privacy.prune is not None and strategy.trigger_rounds == 1 \
            and "trigger_rounds" not in document.aggregation.options:
        # Error feedback spreads a sparse update's step over the sender's next rounds: the
        # trigger screen adds up its latest ones (the caller gives Round.earlier).
        strategy = dataclasses.replace(strategy, trigger_rounds=PRUNE_TRIGGER_ROUNDS)
    if isinstance(strategy, FairFLStrategy) and privacy is not None and privacy.dp is not None \
            and privacy.dp.level == "example":
        # An honest DP-SGD update is mostly isotropic noise: FairFL's NOISE check (agreement
        # beyond chance) rejected every one of them at every epsilon; a chance level of 1
        # turns it off. The gate's noise control tests each update against noise of its own
        # size rather than against nothing, unless the task's options say otherwise: it
        # trades detection at small epsilon for honest FPR (docs/privacy-dp.md).
        control = document.aggregation.options.get("noise_control", True)
        strategy = dataclasses.replace(strategy,
                                       chance_z=chance_z_off(param_count(document.model)),
                                       noise_control=control)
    return strategy
