package strom;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Produced;

/** count-per-key: input → groupByKey → count → output; prints records/s and peak RSS. */
public final class CountPerKey {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], input = args[1], output = args[2];
        long n = Long.parseLong(args[3]);
        String guarantee = args[4]; // at_least_once | exactly_once_v2
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, "kstreams-count-" + guarantee + "-" + ProcessHandle.current().pid());
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        // Emit every update, as strom-streams does (no record cache).
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.STATE_DIR_CONFIG, Files.createTempDirectory("kstreams").toString());
        p.put("consumer.auto.offset.reset", "earliest");
        AtomicLong seen = new AtomicLong();
        long[] first = {0};
        StreamsBuilder b = new StreamsBuilder();
        b.stream(input, Consumed.with(Serdes.String(), Serdes.ByteArray()))
            .peek((k, v) -> { if (seen.getAndIncrement() == 0) first[0] = System.nanoTime(); })
            .groupByKey(Grouped.with(Serdes.String(), Serdes.ByteArray()))
            .count()
            .toStream()
            .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        KafkaStreams streams = new KafkaStreams(b.build(), p);
        streams.start();
        while (seen.get() < n) Thread.sleep(5);
        double secs = (System.nanoTime() - first[0]) / 1e9;
        long rssKb = 0;
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) rssKb = Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
        System.out.printf("{\"records_per_s\": %.0f, \"peak_rss_kb\": %d}%n", n / secs, rssKb);
        streams.close();
        System.exit(0);
    }
}
