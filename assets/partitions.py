from dagster import StaticPartitionMapping, StaticPartitionsDefinition

from tessy_dagster.settings import ALL_ARMS, REFERENCE_MODELS

# Every arm a corpus and a fine-tuned student can come from; `cooperate.arms` picks the ones the demo runs.
arm_partitions = StaticPartitionsDefinition(list(ALL_ARMS))
# The scored models: the teacher itself and the untrained student (references), then each arm's student.
score_partitions = StaticPartitionsDefinition(list(REFERENCE_MODELS + ALL_ARMS))
checkpoint_to_scores = StaticPartitionMapping({arm: arm for arm in ALL_ARMS})
