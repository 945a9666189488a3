package io.switchboard.peer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * What a platform team would write instead of Switchboard's transformer for one flow:
 * Shopify customer change events (Switchboard's raw ChangeEvent, Avro in the registry's
 * wire format) to the canonical Contact (Avro, schema registered in the same registry),
 * with the merge state in a logged state store and {@code processing.guarantee=exactly_once_v2}.
 *
 * <p>Per event: decode the envelope (writer schema fetched by ID once), parse the Shopify
 * JSON, map it (lower-cased e-mail, names, phone), derive the canonical ID (UUIDv5 of
 * connection, entity and native ID, as Switchboard does), keep the newest change per record
 * (older ones and no-op changes write nothing), and write the Contact.
 *
 * <p>Arguments: bootstrap servers, registry URL (Confluent API), input topic, output topic,
 * application.id, state dir, path of contact.v1.avsc.
 */
public final class ContactsPeer {
  private static final UUID NAMESPACE = UUID.fromString("5b0a4d2e-6c1f-4e7a-9f3b-2a8c1d0e7f61");
  private static final String STORE = "contacts";
  private static final ObjectMapper JSON = new ObjectMapper();

  private ContactsPeer() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 7) {
      System.err.println(
          "usage: ContactsPeer <bootstrap> <registry-url> <input> <output> <application-id> <state-dir> <contact.avsc>");
      System.exit(2);
    }
    String bootstrap = args[0];
    Registry registry = new Registry(args[1]);
    String input = args[2];
    String output = args[3];
    Schema contact = new Schema.Parser().parse(Files.readString(Path.of(args[6])));
    int contactId = registry.register(output + "-value", contact);

    Topology topology = new Topology();
    topology.addSource("raw", Serdes.ByteArray().deserializer(), Serdes.ByteArray().deserializer(), input);
    topology.addProcessor("map", () -> new MapContact(registry, contact, contactId), "raw");
    topology.addStateStore(
        Stores.keyValueStoreBuilder(
            Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.ByteArray()),
        "map");
    topology.addSink("canonical", output, Serdes.String().serializer(), Serdes.ByteArray().serializer(), "map");

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[4]);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.STATE_DIR_CONFIG, args[5]);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

    KafkaStreams streams = new KafkaStreams(topology, props);
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close();
      stopped.countDown();
    }));
    streams.setUncaughtExceptionHandler(e -> {
      e.printStackTrace();
      return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_APPLICATION;
    });
    streams.start();
    System.out.println("peer started");
    stopped.await();
  }

  /** One raw event in, the Contact out when it changed the record. */
  static final class MapContact implements Processor<byte[], byte[], String, byte[]> {
    private final Registry registry;
    private final Schema contact;
    private final int contactId;
    private final Map<Integer, GenericDatumReader<GenericRecord>> readers = new HashMap<>();
    private final GenericDatumWriter<GenericRecord> writer;
    private final ByteArrayOutputStream buffer = new ByteArrayOutputStream(256);
    private BinaryEncoder encoder;
    private ProcessorContext<String, byte[]> context;
    private KeyValueStore<String, byte[]> store;

    MapContact(Registry registry, Schema contact, int contactId) {
      this.registry = registry;
      this.contact = contact;
      this.contactId = contactId;
      this.writer = new GenericDatumWriter<>(contact);
    }

    @Override
    public void init(ProcessorContext<String, byte[]> context) {
      this.context = context;
      this.store = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<byte[], byte[]> record) {
      try {
        GenericRecord event = decode(record.value());
        JsonNode payload = JSON.readTree(event.get("payload").toString());
        String connection = event.get("connection").toString();
        String entity = event.get("entity").toString();
        String recordId = event.get("record_id").toString();
        Object sourceTs = event.get("source_timestamp");
        long ts = sourceTs != null ? (Long) sourceTs : (Long) event.get("received_at");
        boolean deleted = "DELETE".equals(event.get("operation").toString());
        String id = uuid5(connection + "/" + entity + "/" + recordId);

        ObjectNode fields = JSON.createObjectNode();
        JsonNode email = payload.get("email");
        fields.put("email", email != null && email.isTextual() && !email.asText().isEmpty()
            ? email.asText().toLowerCase() : null);
        fields.put("first_name", text(payload, "first_name"));
        fields.put("last_name", text(payload, "last_name"));
        fields.put("phone", text(payload, "phone"));

        byte[] old = store.get(id);
        if (old != null) {
          JsonNode state = JSON.readTree(old);
          boolean older = state.get("ts").asLong() > ts;
          boolean same = state.get("fields").equals(fields) && state.get("deleted").asBoolean() == deleted;
          if (older || same) {
            return;
          }
        }
        ObjectNode state = JSON.createObjectNode();
        state.put("ts", ts);
        state.put("deleted", deleted);
        state.set("fields", fields);
        store.put(id, JSON.writeValueAsBytes(state));

        GenericRecord out = new GenericData.Record(contact);
        out.put("id", id);
        out.put("email", fields.get("email").isNull() ? null : fields.get("email").asText());
        out.put("first_name", fields.get("first_name").isNull() ? null : fields.get("first_name").asText());
        out.put("last_name", fields.get("last_name").isNull() ? null : fields.get("last_name").asText());
        out.put("phone", fields.get("phone").isNull() ? null : fields.get("phone").asText());
        out.put("deleted", deleted);
        out.put("source_connection", connection);
        out.put("source_entity", entity);
        out.put("source_id", recordId);
        out.put("source_updated_at", sourceTs);
        out.put("source_event_id", event.get("event_id").toString());
        out.put("mapping", "shopify/customer-to-contact.v1");
        context.forward(new Record<>(id, encode(out), record.timestamp()));
      } catch (IOException e) {
        throw new IllegalStateException("event not mapped: " + e, e);
      }
    }

    private static String text(JsonNode payload, String field) {
      JsonNode v = payload.get(field);
      return v == null || v.isNull() ? null : v.asText();
    }

    private GenericRecord decode(byte[] bytes) throws IOException {
      ByteBuffer wire = ByteBuffer.wrap(bytes);
      if (wire.get() != 0) {
        throw new IOException("not in the registry's wire format");
      }
      int id = wire.getInt();
      GenericDatumReader<GenericRecord> reader = readers.get(id);
      if (reader == null) {
        reader = new GenericDatumReader<>(registry.schema(id));
        readers.put(id, reader);
      }
      return reader.read(null, DecoderFactory.get().binaryDecoder(bytes, 5, bytes.length - 5, null));
    }

    private byte[] encode(GenericRecord record) throws IOException {
      buffer.reset();
      buffer.write(0);
      buffer.write(ByteBuffer.allocate(4).putInt(contactId).array());
      encoder = EncoderFactory.get().binaryEncoder(buffer, encoder);
      writer.write(record, encoder);
      encoder.flush();
      return buffer.toByteArray();
    }
  }

  /** UUIDv5 (SHA-1, RFC 9562) of {@code name} in Switchboard's namespace. */
  static String uuid5(String name) {
    try {
      MessageDigest sha1 = MessageDigest.getInstance("SHA-1");
      ByteBuffer ns = ByteBuffer.allocate(16);
      ns.putLong(NAMESPACE.getMostSignificantBits()).putLong(NAMESPACE.getLeastSignificantBits());
      sha1.update(ns.array());
      byte[] hash = sha1.digest(name.getBytes(StandardCharsets.UTF_8));
      hash[6] = (byte) ((hash[6] & 0x0f) | 0x50);
      hash[8] = (byte) ((hash[8] & 0x3f) | 0x80);
      ByteBuffer b = ByteBuffer.wrap(hash, 0, 16);
      return new UUID(b.getLong(), b.getLong()).toString();
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The few calls of the Confluent registry API the peer needs. */
  static final class Registry {
    private final String url;
    private final HttpClient http = HttpClient.newHttpClient();

    Registry(String url) {
      this.url = url.replaceAll("/+$", "");
    }

    int register(String subject, Schema schema) throws IOException, InterruptedException {
      ObjectNode body = JSON.createObjectNode().put("schema", schema.toString());
      HttpRequest request = HttpRequest.newBuilder(URI.create(url + "/subjects/" + subject + "/versions"))
          .header("Content-Type", "application/vnd.schemaregistry.v1+json")
          .POST(HttpRequest.BodyPublishers.ofByteArray(JSON.writeValueAsBytes(body)))
          .build();
      return call(request).get("id").asInt();
    }

    Schema schema(int id) throws IOException {
      try {
        HttpRequest request = HttpRequest.newBuilder(URI.create(url + "/schemas/ids/" + id)).GET().build();
        return new Schema.Parser().parse(call(request).get("schema").asText());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException(e);
      }
    }

    private JsonNode call(HttpRequest request) throws IOException, InterruptedException {
      HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
      if (response.statusCode() / 100 != 2) {
        throw new IOException(request.uri() + " answered " + response.statusCode() + ": " + response.body());
      }
      return JSON.readTree(response.body());
    }
  }
}
