import org.apache.kafka.common.utils.Utils;
// Generates murmur2.ndjson from the Kafka jars themselves (org.apache.kafka.common.utils.Utils):
//   java -cp "$(cat ~/.cache/gatewatch/kafka-*.classpath)" tests/signals/vectors/Murmur2Vectors.java > tests/signals/vectors/murmur2.ndjson
public class Murmur2Vectors {
  public static void main(String[] a) throws Exception {
    String[] keys = {"", "a", "ab", "abc", "abcd", "checkout", "search", "web", "shop.orders", "21", "payments-api", "éü✓", "x".repeat(37)};
    for (String k : keys) {
      byte[] b = k.getBytes("UTF-8");
      System.out.println("{\"key\": \"" + k + "\", \"murmur2\": " + Utils.murmur2(b) + ", \"partition_of_6\": " + Utils.toPositive(Utils.murmur2(b)) % 6 + "}");
    }
  }
}
