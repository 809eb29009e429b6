"""The per-sensor anomaly model, apart from the dataflow's wiring: pure code a test drives with
plain values, no Kafka and no Bytewax. ``scoring`` composes it for one sensor (``SensorScorer``,
configured by ``ModelParams``): ``seasonality`` takes out a daily or weekly baseline where one
explains the sensor, ``features`` measures a window against the sensor's running level and
spread, ``novelty`` decides whether that is new for the sensor, ``explain`` says why an
anomaly was one, and ``hst`` is River's HalfSpaceTrees with the tree structure shared by a
family. Nothing is re-exported here: import from the module that defines a name
(``from dataflow.model.scoring import SensorScorer``).
"""
