"""Operations: work remaining, the autoscaling policy and its local actuator, health, the
``infq up`` supervisor."""
