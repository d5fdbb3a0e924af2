"""What every stage of a run shares: devices and autocast (:mod:`.runtime`), process groups and the torchrun
launcher (:mod:`.distributed`), run directories (:mod:`.rundir`), checkpoints (:mod:`.checkpoint`), building a
model or loss from a preset (:mod:`.factory`) and the events a training run emits (:mod:`.callbacks`).

Above the domain packages (config, data, models, losses); below convert, infer, report and train.
"""
