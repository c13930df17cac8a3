# checkpointing/: PersistAgent save / load (resume exact to the bit, mid-episode, with a
# curriculum, float and double; refusals leave the agent unchanged), GridLife and
# MetricsTracker state, periodic checkpoints; curriculum from config (make_curriculum).
persist_add_test(test_train_checkpoint checkpointing/test_agent_checkpoint.cpp
                 checkpointing/test_env_metrics_state.cpp checkpointing/test_curriculum_config.cpp)
target_compile_definitions(test_train_checkpoint PRIVATE
    PERSIST_CONFIG_EXAMPLES_DIR="${PROJECT_SOURCE_DIR}/examples/configs")
