"""eie.sim"""
