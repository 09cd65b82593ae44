"""The lecture's three training examples as the page shows them: the lecture's TensorFlow 1
snippet (quoted from the lecture, never run) beside the charrnn code that runs the same thing.

The charrnn code is written for the settings of a job, so what the page shows is what the
job runs: ``tests/test_studio_api.py`` executes it and compares its loss with the job's.
"""

from __future__ import annotations

from charrnn.lecture import TRAINING_EXAMPLES, LectureSettings, TrainingExample

#: The lecture's own code for each example (TensorFlow 1.x, as the lecture printed it).
TENSORFLOW_CODE = {
    "hihello": '''\
idx2char = ['h', 'i', 'e', 'l', 'o']
x_data = [[0, 1, 0, 2, 3, 3]]   # hihell
y_data = [[1, 0, 2, 3, 3, 4]]   # ihello
hidden_size = 5                 # output from the LSTM. 5 to directly predict one-hot
learning_rate = 0.1

X = tf.placeholder(tf.float32, [None, sequence_length, input_dim])  # X one-hot
Y = tf.placeholder(tf.int32, [None, sequence_length])               # Y label
cell = tf.contrib.rnn.BasicLSTMCell(num_units=hidden_size, state_is_tuple=True)
initial_state = cell.zero_state(batch_size, tf.float32)
outputs, _states = tf.nn.dynamic_rnn(
    cell, X, initial_state=initial_state, dtype=tf.float32)
weights = tf.ones([batch_size, sequence_length])
sequence_loss = tf.contrib.seq2seq.sequence_loss(
    logits=outputs, targets=Y, weights=weights)
loss = tf.reduce_mean(sequence_loss)
train = tf.train.AdamOptimizer(learning_rate=learning_rate).minimize(loss)
prediction = tf.argmax(outputs, axis=2)

with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    for i in range(2000):
        l, _ = sess.run([loss, train], feed_dict={X: x_one_hot, Y: y_data})
        result = sess.run(prediction, feed_dict={X: x_one_hot})
        print(i, "loss:", l, "prediction: ", result, "true Y: ", y_data)
        result_str = [idx2char[c] for c in np.squeeze(result)]
        print("\\tPrediction str: ", ''.join(result_str))
''',
    "long-sequence": '''\
sample = " if you want you"
idx2char = list(set(sample))                      # index -> char
char2idx = {c: i for i, c in enumerate(idx2char)}
hidden_size = len(char2idx)                       # RNN output size
num_classes = len(char2idx)
sequence_length = len(sample) - 1
learning_rate = 0.1
sample_idx = [char2idx[c] for c in sample]
x_data = [sample_idx[:-1]]                        # hello: hell
y_data = [sample_idx[1:]]                         # hello: ello
x_one_hot = tf.one_hot(X, num_classes)

cell = tf.contrib.rnn.BasicLSTMCell(num_units=hidden_size, state_is_tuple=True)
initial_state = cell.zero_state(batch_size, tf.float32)
outputs, _states = tf.nn.dynamic_rnn(
    cell, x_one_hot, initial_state=initial_state, dtype=tf.float32)
# FC layer
X_for_fc = tf.reshape(outputs, [-1, hidden_size])
outputs = tf.contrib.layers.fully_connected(X_for_fc, num_classes, activation_fn=None)
outputs = tf.reshape(outputs, [batch_size, sequence_length, num_classes])
weights = tf.ones([batch_size, sequence_length])
sequence_loss = tf.contrib.seq2seq.sequence_loss(
    logits=outputs, targets=Y, weights=weights)
loss = tf.reduce_mean(sequence_loss)
train = tf.train.AdamOptimizer(learning_rate=learning_rate).minimize(loss)
prediction = tf.argmax(outputs, axis=2)

with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    for i in range(50):
        l, _ = sess.run([loss, train], feed_dict={X: x_data, Y: y_data})
        result = sess.run(prediction, feed_dict={X: x_data})
        result_str = [idx2char[c] for c in np.squeeze(result)]
        print(i, "loss:", l, "Prediction:", ''.join(result_str))
''',
    "long-sentence": '''\
sentence = ("if you want to build a ship, don't drum up people together to "
            "collect wood and don't assign them tasks and work, but rather "
            "teach them to long for the endless immensity of the sea.")
char_set = list(set(sentence))
char_dic = {w: i for i, w in enumerate(char_set)}
hidden_size = len(char_set)
num_classes = len(char_set)
sequence_length = 10
learning_rate = 0.1
for i in range(0, len(sentence) - sequence_length):
    x_str = sentence[i:i + sequence_length]
    y_str = sentence[i + 1: i + sequence_length + 1]
    dataX.append([char_dic[c] for c in x_str])
    dataY.append([char_dic[c] for c in y_str])
batch_size = len(dataX)
X_one_hot = tf.one_hot(X, num_classes)

def lstm_cell():
    cell = rnn.BasicLSTMCell(hidden_size, state_is_tuple=True)
    return cell
multi_cells = rnn.MultiRNNCell([lstm_cell() for _ in range(2)], state_is_tuple=True)
outputs, _states = tf.nn.dynamic_rnn(multi_cells, X_one_hot, dtype=tf.float32)
X_for_fc = tf.reshape(outputs, [-1, hidden_size])
outputs = tf.contrib.layers.fully_connected(X_for_fc, num_classes, activation_fn=None)
outputs = tf.reshape(outputs, [batch_size, sequence_length, num_classes])
weights = tf.ones([batch_size, sequence_length])
sequence_loss = tf.contrib.seq2seq.sequence_loss(
    logits=outputs, targets=Y, weights=weights)
mean_loss = tf.reduce_mean(sequence_loss)
train_op = tf.train.AdamOptimizer(learning_rate=learning_rate).minimize(mean_loss)
for i in range(500):
    _, l, results = sess.run(
        [train_op, mean_loss, outputs], feed_dict={X: dataX, Y: dataY})
''',
}

#: The function of :mod:`charrnn.lecture` that makes each example's data.
_EXAMPLE_FUNCTIONS = {name: function.__name__ for name, function in TRAINING_EXAMPLES.items()}


def charrnn_code(name: str, settings: LectureSettings, iterations: int) -> str:
    """The Python that trains example ``name`` with ``settings`` for ``iterations``, as the studio's job does.

    The settings are written out whole (the example's own values where ``settings`` leaves
    them None), so the code reads as a complete program.
    """
    example = TRAINING_EXAMPLES[name]()
    filled = resolved_settings(example, settings)
    function = _EXAMPLE_FUNCTIONS[name]
    return f'''\
from charrnn.lecture import LectureSettings, LectureTraining, {function}

example = {function}()        # inputs {tuple(example.inputs.shape)}, targets one step ahead
settings = LectureSettings(seed={filled.seed!r}, cell={filled.cell!r}, hidden_size={filled.hidden_size!r},
                           learning_rate={filled.learning_rate!r}, optimizer={filled.optimizer!r},
                           dense={filled.dense!r})
training = LectureTraining.for_example(example, settings)
for i in range({iterations}):
    loss = training.step()             # sess.run([loss, train])
    prediction = training.predict()    # sess.run(prediction)
    print(i, "loss:", loss.item(), "prediction:", example.read(prediction))
'''


def resolved_settings(example: TrainingExample, settings: LectureSettings) -> LectureSettings:
    """``settings`` with every None replaced by the example's own value."""
    return LectureSettings(
        seed=settings.seed, cell=settings.cell or example.cell,
        hidden_size=example.hidden_size if settings.hidden_size is None else settings.hidden_size,
        learning_rate=example.learning_rate if settings.learning_rate is None else settings.learning_rate,
        optimizer=settings.optimizer, dense=example.dense if settings.dense is None else settings.dense)


def describe_examples() -> list[dict]:
    """Each training example as the page's menu needs it: name, the lecture's settings, its text and code."""
    described = []
    for name, make in TRAINING_EXAMPLES.items():
        example = make()
        described.append({
            "name": name, "cell": example.cell, "hidden_size": example.hidden_size,
            "num_layers": example.num_layers, "dense": example.dense, "iterations": example.iterations,
            "learning_rate": example.learning_rate, "num_classes": example.num_classes,
            "characters": list(example.characters),
            "input_text": example.read(example.inputs), "target_text": example.read(example.targets),
            "tensorflow_code": TENSORFLOW_CODE[name],
        })
    return described
