"""yolotl: transfer learning for YOLO object detection."""
