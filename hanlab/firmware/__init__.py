"""Firmware: ZigBee OTA image files and their catalogue, the OTA transfer seen on the HAN
block by block, and SIP#7 Firmware Distribution Tracking (DESIGN.md, "Firmware").

* :mod:`.ota_file`: parse, build and check OTA Upgrade files (ZCL 07-5123 §11.4).
* :mod:`.catalogue`: ``firmware_images/index.yaml`` (path, device model, manufacturer code,
  image type, file version, sha256, CPL reference, release note).
* :mod:`.transfers`: transfers reconstructed from captures (``hanlab firmware transfers``).
* :mod:`.live`: the same transfers on a rig's live bus, as MQTT ``ota`` progress events.
* :mod:`.tracking`: SIP#7 Processing and Completion Status per Update Firmware request and
  device (seed 003).
* :mod:`.ch_image`: a Communications Hub firmware image as data (version, CHTS, ZigBee PRO
  stack, SE version, reboot time).
* :mod:`.impact`: the HAN impact of a CH upgrade, timings before and after (SECMP0024).
"""
