"""What a Druid 27 Coordinator's HTTP layer does byte for byte, for the fake.

The wire-level pieces of ``druid_access.testing.fake_coordinator``, each mirroring what Apache Druid
27.0.0 (Jetty 9.4.51, Jersey 1.19.4, Jackson 2.10.5) does, as verified by the contract suite:

- ``jetty``: responses as Jersey and Jetty send them (JSON entities, empty rejections, HTML error pages)
  and ``DruidError``, which carries one.
- ``jackson``: a streaming emulation of Jackson 2.10 and the entity readers of the basic-security API.
- ``smile``: Jackson Smile encoding (as Druid's smile mapper writes it) and decoding.

Resource-name regexes (``java.util.regex``) are checked by the product's ``druid_access.javaregex``.
"""
