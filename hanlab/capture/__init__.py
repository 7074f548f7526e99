"""Capture files: reading pcap/pcapng (:mod:`.reader`), writing TAP pcapng (:mod:`.pcapng`),
rotation per rig and band (:mod:`.rotation`), and the capture sink (:mod:`.sink`)."""
