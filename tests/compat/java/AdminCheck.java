// Kafka's own Java Admin client (kafka-clients from Maven Central) against strom:
// the Kafka 4 admin calls a single node must answer. Run as a single-file program:
//   java -cp 'tests/compat/kafka/target/dependency/*' AdminCheck.java BOOTSTRAP TOPIC DATA_DIR
// Prints one `key=value` line per observation; test_java_admin.py asserts on them.

import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ListConfigResourcesOptions;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.QuorumInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionReplica;
import org.apache.kafka.common.config.ConfigResource;

public class AdminCheck {
    static void out(String key, Object value) {
        System.out.println(key + "=" + value);
    }

    /** The simple name of the exception a future fails with, or "ok". */
    static String outcome(KafkaFuture<?> future) throws InterruptedException {
        try {
            future.get();
            return "ok";
        } catch (ExecutionException e) {
            return e.getCause().getClass().getSimpleName();
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], dataDir = args[2];
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
            NewTopic newTopic = new NewTopic(topic, 3, (short) 1).configs(Map.of(
                "compression.type", "lz4",
                "min.insync.replicas", "1",
                "unclean.leader.election.enable", "false",
                "message.format.version", "3.0-IV1"));
            admin.createTopics(List.of(newTopic)).all().get();

            // Kafka 4's describeTopics uses DescribeTopicPartitions (KIP-966).
            TopicDescription described = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            int node = described.partitions().get(0).leader().id();
            out("describe.partitions", described.partitions().size());
            out("describe.isr", described.partitions().get(2).isr().size());
            out("describe.leader_is_node", described.partitions().stream().allMatch(p -> p.leader().id() == node));

            QuorumInfo quorum = admin.describeMetadataQuorum().quorumInfo().get();
            out("quorum.leader_is_node", quorum.leaderId() == node);
            out("quorum.voters", quorum.voters().size());
            out("quorum.observers", quorum.observers().size());

            TopicPartition first = new TopicPartition(topic, 0);
            Map<TopicPartition, Optional<Throwable>> elected =
                admin.electLeaders(ElectionType.PREFERRED, Set.of(first)).partitions().get();
            out("elect", elected.get(first).map(t -> t.getClass().getSimpleName()).orElse("elected"));

            TopicPartition second = new TopicPartition(topic, 1);
            out("reassign.to_node", outcome(admin.alterPartitionReassignments(Map.of(
                second, Optional.of(new NewPartitionReassignment(List.of(node))))).all()));
            out("reassign.to_other", outcome(admin.alterPartitionReassignments(Map.of(
                second, Optional.of(new NewPartitionReassignment(List.of(node, node + 1))))).all()));
            out("reassign.listed", admin.listPartitionReassignments().reassignments().get().size());

            out("logdirs.data_dir", outcome(admin.alterReplicaLogDirs(Map.of(
                new TopicPartitionReplica(topic, 0, node), dataDir)).all()));
            out("logdirs.other", outcome(admin.alterReplicaLogDirs(Map.of(
                new TopicPartitionReplica(topic, 0, node), "/no/such/dir")).all()));

            ConfigResource brokerResource = new ConfigResource(ConfigResource.Type.BROKER, String.valueOf(node));
            Config broker = admin.describeConfigs(List.of(brokerResource)).all().get().get(brokerResource);
            out("broker.listeners", broker.get("listeners").value());
            out("broker.advertised.listeners", broker.get("advertised.listeners").value());
            out("broker.num.partitions", broker.get("num.partitions").value());

            ConfigResource topicResource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Config topicConfig = admin.describeConfigs(List.of(topicResource)).all().get().get(topicResource);
            out("topic.compression.type", topicConfig.get("compression.type").value());
            out("topic.min.insync.replicas", topicConfig.get("min.insync.replicas").value());
            out("topic.message.format.version", topicConfig.get("message.format.version"));

            out("config_resources.has_topic", admin.listConfigResources(
                    Set.of(ConfigResource.Type.TOPIC), new ListConfigResourcesOptions())
                .all().get().stream().anyMatch(r -> r.name().equals(topic)));
        }
    }
}
