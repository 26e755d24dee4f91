/*
 * Sets the log limits of a librdkafka mock cluster's partitions.
 *
 * librdkafka's mock cluster keeps at most 5 MiB and 100,000 message sets per partition and
 * deletes the oldest beyond that (rd_kafka_mock_partition_init in rdkafka_mock.c); its API has
 * no setter. sim's embedded broker is that mock cluster, so it raises both limits to a memory
 * budget of its own choosing (and reports when the broker deletes anything).
 *
 * This file is compiled against the internal headers of the very librdkafka that rdkafka-sys
 * built and links (build.rs finds them through DEP_RDKAFKA_ROOT), so the structure layouts it
 * uses are that build's own. A librdkafka that renames these fields fails sim's build, not its
 * runs.
 *
 * Call it right after the topic is created and before any client produces to it; the caller then
 * makes one synchronous request to the mock cluster's thread (rd_kafka_mock_broker_set_rtt),
 * whose queue hand-off publishes these writes to that thread before it appends anything.
 */
#include "rdkafka_int.h"
#include "rdkafka_mock_int.h"

/* Returns the topic's partition count, or -1 when the cluster has no such topic. */
int sim_mock_set_log_limits(rd_kafka_mock_cluster_t *mcluster,
                            const char *topic,
                            size_t max_bytes,
                            size_t max_message_sets) {
        rd_kafka_mock_topic_t *mtopic = rd_kafka_mock_topic_find(mcluster, topic);
        int i;

        if (!mtopic)
                return -1;
        for (i = 0; i < mtopic->partition_cnt; i++) {
                mtopic->partitions[i].max_size = max_bytes;
                mtopic->partitions[i].max_cnt  = max_message_sets;
        }
        return mtopic->partition_cnt;
}
