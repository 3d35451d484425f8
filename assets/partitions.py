from dagster import StaticPartitionMapping, StaticPartitionsDefinition

from tessy_dagster.settings import ARMS, SCORED_ARMS

# The arms whose traces become a corpus and a fine-tuned student.
arm_partitions = StaticPartitionsDefinition(list(ARMS))
# The scored models: the teacher itself and the untrained student (references), then each arm's student.
score_partitions = StaticPartitionsDefinition(list(SCORED_ARMS))
checkpoint_to_scores = StaticPartitionMapping({arm: arm for arm in ARMS})
