"""Bridges to robots: ROS 2 through roslibpy and the rosbridge protocol."""
